package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// The crash tests run the registry in a child process (this test binary,
// re-executed) so they can kill it with SIGKILL, exactly like a power cut
// from the registry's point of view, and then start a fresh one on the same
// root.
const childRootEnv = "BERTH_TEST_CHILD_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(childRootEnv); root != "" {
		runChild(root)
		return
	}
	os.Exit(m.Run())
}

func runChild(root string) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := New(context.Background(), Options{RootDirectory: root, DeleteEnabled: true, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr().String())
	srv.ServeListener(context.Background(), ln)
}

type child struct {
	cmd  *exec.Cmd
	base string
}

func startChild(t *testing.T, root string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRootEnv+"="+root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not report its address: %v", err)
	}
	return &child{cmd: cmd, base: "http://" + strings.TrimSpace(line)}
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(os.Kill)
	c.cmd.Wait()
}

func do(t *testing.T, method, url string, hdr map[string]string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func expectStatus(t *testing.T, resp *http.Response, want int) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pushImage pushes a one-layer image and returns the layer and manifest.
func pushImage(t *testing.T, base, repo, tag string) (layer []byte, manifest []byte) {
	layer = randomBytes(t, 300<<10)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{layer, cfg} {
		expectStatus(t, do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), nil, bytes.NewReader(b)), http.StatusCreated)
	}
	manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(cfg), len(cfg), digest.FromBytes(layer), len(layer)))
	expectStatus(t, do(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag,
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, bytes.NewReader(manifest)), http.StatusCreated)
	return layer, manifest
}

func TestKillDuringUploadLosesNothingCommitted(t *testing.T) {
	root := t.TempDir()
	c := startChild(t, root)

	layer, manifest := pushImage(t, c.base, "team/app", "v1")

	// An upload in flight: one chunk stored, a second one streaming when the
	// process dies.
	big := randomBytes(t, 4<<20)
	bigDigest := digest.FromBytes(big)
	resp := do(t, "POST", c.base+"/v2/team/app/blobs/uploads/", nil, nil)
	expectStatus(t, resp, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	first := 1 << 20
	expectStatus(t, do(t, "PATCH", c.base+loc, map[string]string{
		"Content-Range": fmt.Sprintf("0-%d", first-1), "Content-Type": "application/octet-stream",
	}, bytes.NewReader(big[:first])), http.StatusAccepted)

	pr, pw := io.Pipe()
	go func() {
		req, _ := http.NewRequest("PATCH", c.base+loc, pr)
		req.Header.Set("Content-Type", "application/octet-stream")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(big[first : first+(1<<20)]); err != nil {
		t.Fatal(err)
	}
	// Wait until the streamed bytes reached the upload file, then kill.
	id := loc[strings.LastIndex(loc, "/")+1:]
	dataFile := filepath.Join(root, "docker/registry/v2/repositories/team/app/_uploads", id, "data")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(dataFile); err == nil && fi.Size() > int64(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("streamed chunk never reached storage")
		}
		time.Sleep(5 * time.Millisecond) // polling observable state, not synchronising on time
	}
	c.kill(t)
	pw.CloseWithError(io.ErrUnexpectedEOF)

	c = startChild(t, root)

	// Everything committed before the crash is served, byte for byte.
	got := expectStatus(t, do(t, "GET", c.base+"/v2/team/app/manifests/v1", nil, nil), http.StatusOK)
	if !bytes.Equal(got, manifest) {
		t.Fatal("manifest changed across the crash")
	}
	got = expectStatus(t, do(t, "GET", c.base+"/v2/team/app/blobs/"+digest.FromBytes(layer).String(), nil, nil), http.StatusOK)
	if !bytes.Equal(got, layer) {
		t.Fatal("layer changed across the crash")
	}
	tags := expectStatus(t, do(t, "GET", c.base+"/v2/team/app/tags/list", nil, nil), http.StatusOK)
	if !strings.Contains(string(tags), `"v1"`) {
		t.Fatalf("tag list after restart: %s", tags)
	}

	// The interrupted blob is not visible, anywhere.
	expectStatus(t, do(t, "HEAD", c.base+"/v2/team/app/blobs/"+bigDigest.String(), nil, nil), http.StatusNotFound)
	blobFile := filepath.Join(root, "docker/registry/v2/blobs/sha256", bigDigest.Encoded()[:2], bigDigest.Encoded(), "data")
	if _, err := os.Stat(blobFile); !os.IsNotExist(err) {
		t.Fatalf("partial blob reached the blob store: %v", err)
	}

	// The upload resumes where storage says it stopped, and completes.
	resp = do(t, "GET", c.base+loc, nil, nil)
	expectStatus(t, resp, http.StatusNoContent)
	var end int
	if _, err := fmt.Sscanf(resp.Header.Get("Range"), "0-%d", &end); err != nil {
		t.Fatalf("bad Range %q", resp.Header.Get("Range"))
	}
	have := end + 1
	if have < first || have > first+(1<<20) {
		t.Fatalf("upload holds %d bytes after the crash, want between %d and %d", have, first, first+(1<<20))
	}
	expectStatus(t, do(t, "PATCH", c.base+loc, map[string]string{
		"Content-Range": fmt.Sprintf("%d-%d", have, len(big)-1), "Content-Type": "application/octet-stream",
	}, bytes.NewReader(big[have:])), http.StatusAccepted)
	expectStatus(t, do(t, "PUT", c.base+loc+"?digest="+bigDigest.String(), nil, nil), http.StatusCreated)
	got = expectStatus(t, do(t, "GET", c.base+"/v2/team/app/blobs/"+bigDigest.String(), nil, nil), http.StatusOK)
	if !bytes.Equal(got, big) {
		t.Fatal("resumed blob differs from what was sent")
	}
}

func TestKillAfterPushRebuildsIndex(t *testing.T) {
	root := t.TempDir()
	c := startChild(t, root)
	_, m1 := pushImage(t, c.base, "a/one", "latest")
	_, m2 := pushImage(t, c.base, "b/two", "1.0")
	c.kill(t) // the index is never closed cleanly

	c = startChild(t, root)
	cat := expectStatus(t, do(t, "GET", c.base+"/v2/_catalog", nil, nil), http.StatusOK)
	if string(cat) != `{"repositories":["a/one","b/two"]}` {
		t.Fatalf("catalog after crash: %s", cat)
	}
	for ref, want := range map[string][]byte{"/v2/a/one/manifests/latest": m1, "/v2/b/two/manifests/1.0": m2} {
		resp := do(t, "GET", c.base+ref, nil, nil)
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("%s: Content-Type %q", ref, ct)
		}
		if got := expectStatus(t, resp, http.StatusOK); !bytes.Equal(got, want) {
			t.Errorf("%s: manifest differs after crash", ref)
		}
	}
	// No stray temporary files in the blob store.
	filepath.WalkDir(filepath.Join(root, "docker/registry/v2/blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "data" {
			t.Errorf("stray file in blob store: %s", p)
		}
		return nil
	})
}
