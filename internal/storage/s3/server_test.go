package s3

// The tests run against a real S3-compatible server started here: MinIO or
// versitygw, whichever is installed (testdata/install-s3-server.sh installs
// versitygw). Without one they skip, or fail when CI is set.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/berth-registry/berth/internal/testenv"
)

const (
	testAccessKey = "berthtestaccess"
	testSecretKey = "berthtestsecret123"
)

// s3Server is a running S3-compatible server.
type s3Server struct {
	kind     string // "minio" or "versitygw"
	endpoint string // host:port
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
	dir      string
}

var (
	serverOnce sync.Once
	server     *s3Server
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.stop()
	}
	os.Exit(code)
}

// startedServer returns the package's server, starting it on first use.
func startedServer(t testing.TB) *s3Server {
	t.Helper()
	serverOnce.Do(func() { server, serverErr = startServer() })
	if serverErr != nil {
		testenv.Missing(t, fmt.Sprintf("S3 test server: %v (install one with internal/storage/s3/testdata/install-s3-server.sh)", serverErr))
	}
	return server
}

// findServer looks for minio, then versitygw, in PATH and GOPATH/bin.
// BERTH_S3_TEST_SERVER names a binary to use instead.
func findServer() (kind, bin string, err error) {
	if bin := os.Getenv("BERTH_S3_TEST_SERVER"); bin != "" {
		kind := filepath.Base(bin)
		if kind != "minio" && kind != "versitygw" {
			return "", "", fmt.Errorf("BERTH_S3_TEST_SERVER=%s: not minio or versitygw", bin)
		}
		return kind, bin, nil
	}
	for _, kind := range []string{"minio", "versitygw"} {
		if p, err := exec.LookPath(kind); err == nil {
			return kind, p, nil
		}
		for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
			p := filepath.Join(gopath, "bin", kind)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return kind, p, nil
			}
		}
	}
	return "", "", fmt.Errorf("neither minio nor versitygw found in PATH or GOPATH/bin")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startServer() (*s3Server, error) {
	kind, bin, err := findServer()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "berth-s3-test-")
	if err != nil {
		return nil, err
	}
	// A port picked this way can be taken before the server binds it;
	// try a few.
	var lastErr error
	for range 3 {
		s, err := tryStart(kind, bin, dir)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func tryStart(kind, bin, dir string) (*s3Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	data := filepath.Join(dir, fmt.Sprintf("data-%d", port))
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	env := os.Environ()
	switch kind {
	case "minio":
		console, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(bin, "server", data, "--address", addr, "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
		env = append(env, "MINIO_ROOT_USER="+testAccessKey, "MINIO_ROOT_PASSWORD="+testSecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	case "versitygw":
		cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", data)
		env = append(env, "ROOT_ACCESS_KEY="+testAccessKey, "ROOT_SECRET_KEY="+testSecretKey)
	}
	cmd.Env = env
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", kind, port)))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &s3Server{kind: kind, endpoint: addr, cmd: cmd, exited: make(chan struct{}), log: logf, dir: dir}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.stop()
		out, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%s on %s: %v; log:\n%s", kind, addr, err, out)
	}
	return s, nil
}

// waitReady polls until the server answers S3 requests, the process exits,
// or the timeout passes.
func (s *s3Server) waitReady(timeout time.Duration) error {
	client := s.client()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %v", s.cmd.ProcessState)
		case <-tick.C:
		}
	}
}

func (s *s3Server) client() *minio.Client {
	c, err := minio.New(s.endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(testAccessKey, testSecretKey, ""),
		Region:    "us-east-1",
		Transport: http.DefaultTransport,
	})
	if err != nil {
		panic(err)
	}
	return c
}

func (s *s3Server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
	os.RemoveAll(s.dir)
}

// newBucket creates an empty bucket for one test.
func (s *s3Server) newBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "berth-" + strings.ToLower(hex.EncodeToString(b[:]))
	if err := s.client().MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	return name
}

// params returns driver parameters for bucket on this server.
func (s *s3Server) params(bucket, root string) Params {
	p := DefaultParams()
	p.AccessKey, p.SecretKey = testAccessKey, testSecretKey
	p.Region = "us-east-1"
	p.RegionEndpoint = "http://" + s.endpoint
	p.ForcePathStyle = true
	p.Bucket = bucket
	p.RootDirectory = root
	p.ChunkSize = minPartSize
	p.MultipartCopyChunkSize = minPartSize
	p.MultipartCopyThresholdSize = minPartSize
	return p
}

// newTestDriver returns a driver on a fresh bucket.
func newTestDriver(t testing.TB, root string, edit ...func(*Params)) (*Driver, *s3Server, string) {
	t.Helper()
	s := startedServer(t)
	bucket := s.newBucket(t)
	p := s.params(bucket, root)
	for _, e := range edit {
		e(&p)
	}
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, s, bucket
}
