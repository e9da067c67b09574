//go:build e2e

package multi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/s3"
	"github.com/berth-registry/berth/internal/testenv"
	"github.com/berth-registry/berth/test/harness"
)

// need finds a tool, skipping the test without it (failing under CI).
func need(t *testing.T, name string, paths ...string) string {
	t.Helper()
	for _, p := range append([]string{name}, paths...) {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("%s not found: install it (.ci/run multi does: apt-get install -y postgresql nginx)", name)
	testenv.Missing(t, msg)
	return ""
}

// startProc starts a server the test needs (nginx, versitygw) with env
// added to the test's environment; it is stopped at cleanup and dies with
// the test binary.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *harness.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return harness.StartProc(t, name, logPath, cmd)
}

// nginx balances round-robin over the writable instances, as the seeds'
// load balancer or round-robin DNS would: a new upstream connection per
// request, request bodies streamed (an upload is never buffered whole),
// no body size limit, and a request that cannot reach one instance (refused
// connection) passed to the next.
type nginx struct {
	*harness.Proc
	Addr      string
	AccessLog string
	ErrorLog  string
}

func startNginx(t *testing.T, upstreams []string) *nginx {
	t.Helper()
	bin := need(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "\t\tserver %s max_fails=1 fail_timeout=30s;\n", u)
	}
	n := &nginx{Addr: addr, AccessLog: filepath.Join(dir, "access.log"), ErrorLog: filepath.Join(dir, "error.log")}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[3]s info;
events { worker_connections 256; }
http {
	access_log %[2]s;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream berth {
%[4]s	}
	server {
		listen %[5]s;
		client_max_body_size 0;
		chunked_transfer_encoding on;
		location / {
			proxy_pass http://berth;
			proxy_http_version 1.1;
			proxy_request_buffering off;
			proxy_buffering off;
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_next_upstream error timeout;
			proxy_next_upstream_tries 3;
			proxy_connect_timeout 5s;
			proxy_read_timeout 300s;
			proxy_send_timeout 300s;
		}
	}
}
`, dir, n.AccessLog, n.ErrorLog, servers.String(), addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Proc = startProc(t, "nginx", filepath.Join(dir, "stderr.log"), nil, bin, "-p", dir, "-e", n.ErrorLog, "-c", confPath)
	n.WaitListening(t, addr)
	return n
}

func (n *nginx) URL() string { return "http://" + n.Addr }

// Errors is nginx's error log.
func (n *nginx) Errors() string {
	b, _ := os.ReadFile(n.ErrorLog)
	return string(b)
}

// backend is the storage every instance shares.
type backend struct {
	name string
	// env configures berth for it (on top of the harness's filesystem
	// config, which REGISTRY_STORAGE=s3 replaces).
	env []string
	// root is the filesystem root directory (filesystem backend).
	root string
	// driver opens the storage directly, to seed it as registry:2 would.
	driver func(t *testing.T) storage.Driver
}

func filesystemBackend(t *testing.T) *backend {
	root := filepath.Join(t.TempDir(), "shared")
	return &backend{
		name: "filesystem",
		root: root,
		driver: func(t *testing.T) storage.Driver {
			d, err := filesystem.New(root)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
}

const (
	s3Access = "berthmulti"
	s3Secret = "berthmultisecret"
	s3Bucket = "registry"
)

// s3Backend starts an S3-compatible server (MinIO or versitygw, as
// internal/storage/s3's tests do) with one bucket.
func s3Backend(t *testing.T) *backend {
	t.Helper()
	var bin, kind string
	for _, k := range []string{"minio", "versitygw"} {
		if p, err := exec.LookPath(k); err == nil {
			bin, kind = p, k
			break
		}
		if p := filepath.Join(os.Getenv("HOME"), "go", "bin", k); fileExists(p) {
			bin, kind = p, k
			break
		}
	}
	if bin == "" {
		msg := "no S3 server (minio or versitygw): install one with internal/storage/s3/testdata/install-s3-server.sh"
		testenv.Missing(t, msg)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var p *harness.Proc
	switch kind {
	case "minio":
		console, _ := harness.FreeAddr()
		p = startProc(t, kind, filepath.Join(dir, "s3.log"),
			[]string{"MINIO_ROOT_USER=" + s3Access, "MINIO_ROOT_PASSWORD=" + s3Secret, "MINIO_BROWSER=off", "MINIO_UPDATE=off"},
			bin, "server", data, "--address", addr, "--console-address", console, "--quiet")
	default:
		p = startProc(t, kind, filepath.Join(dir, "s3.log"),
			[]string{"ROOT_ACCESS_KEY=" + s3Access, "ROOT_SECRET_KEY=" + s3Secret},
			bin, "--port", addr, "--quiet", "posix", data)
	}
	p.WaitListening(t, addr)
	mc, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1", Transport: http.DefaultTransport})
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, kind+" creating a bucket", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := mc.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{Region: "us-east-1"})
		if err != nil {
			if exists, _ := mc.BucketExists(ctx, s3Bucket); exists {
				return true, ""
			}
			return false, err.Error()
		}
		return true, ""
	})
	return &backend{
		name: "s3 (" + kind + ")",
		env: []string{
			"REGISTRY_STORAGE=s3",
			"REGISTRY_STORAGE_S3_ACCESSKEY=" + s3Access,
			"REGISTRY_STORAGE_S3_SECRETKEY=" + s3Secret,
			"REGISTRY_STORAGE_S3_REGION=us-east-1",
			"REGISTRY_STORAGE_S3_REGIONENDPOINT=http://" + addr,
			"REGISTRY_STORAGE_S3_BUCKET=" + s3Bucket,
			"REGISTRY_STORAGE_S3_SECURE=false",
			"REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true",
			"REGISTRY_STORAGE_S3_CHUNKSIZE=5242880",
		},
		driver: func(t *testing.T) storage.Driver {
			p := s3.DefaultParams()
			p.AccessKey, p.SecretKey, p.Region = s3Access, s3Secret, "us-east-1"
			p.RegionEndpoint, p.ForcePathStyle, p.Secure = "http://"+addr, true, false
			p.Bucket = s3Bucket
			d, err := s3.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// seedStorage writes images into the shared storage directly, as registry:2 would
// have: berth has never seen them, and its shared index does not know them.
func seedStorage(t *testing.T, b *backend, images ...image) {
	t.Helper()
	ctx := context.Background()
	scratch, err := index.Open(filepath.Join(t.TempDir(), "scratch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	reg := content.New(b.driver(t), scratch, content.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, im := range images {
		for _, blob := range im.blobs() {
			if _, err := reg.PutBlob(ctx, im.repo, digest.FromBytes(blob), strings.NewReader(string(blob))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := reg.PutManifest(ctx, im.repo, im.tag, ociManifest, im.manifest); err != nil {
			t.Fatal(err)
		}
	}
}

// serving finds the instance (by port) that has a request from nginx in
// flight: an established TCP connection to its port that is not one of
// this test process's own.
func serving(t *testing.T, ports map[int]string) (string, error) {
	t.Helper()
	mine := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	found := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "01" { // ESTABLISHED
			continue
		}
		rem := fields[2]
		i := strings.LastIndexByte(rem, ':')
		port, err := strconv.ParseInt(rem[i+1:], 16, 32)
		if err != nil {
			continue
		}
		name, ok := ports[int(port)]
		if !ok || mine[fields[9]] {
			continue // not to an instance, or our own connection
		}
		found[name] = true
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%w: %d instances have connections from nginx (%v)", errNoInstance, len(found), found)
	}
	for name := range found {
		return name, nil
	}
	return "", errNoInstance
}
