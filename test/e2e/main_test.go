//go:build e2e

// Package e2e drives berth with the real clients people use: the Docker
// engine, podman, buildah, skopeo, crane, regctl and oras. It is behind the
// e2e build tag (so `go test ./...` does not need those tools); run it with
//
//	test/e2e/install-tools.sh   # once, as root
//	go test -tags e2e -count=1 -parallel 4 ./test/e2e/
//
// Every test starts its own berth (test/harness) on a fresh storage root.
// A missing tool skips the test locally and fails it when CI is set.
package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testenv"
	"github.com/berth-registry/berth/test/harness"
)

const (
	// cmdTimeout bounds every tool invocation.
	cmdTimeout = 5 * time.Minute
	MiB        = 1 << 20
)

var dataDir string // shared, generated once: large random files

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-e2e-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dataDir = dir
	code := harness.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of a client the test needs (testenv: a skip
// locally, a failure under CI).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	return testenv.Tool(t, name, "install the e2e tools with test/e2e/install-tools.sh")
}

// --- generated data ---------------------------------------------------------

var (
	dataMu    sync.Mutex
	dataFiles = map[string]string{}
)

// randomFile returns the path of a file of size bytes of pseudo-random data
// from seed, generated once per test binary into dataDir.
func randomFile(t *testing.T, size int64, seed uint64) string {
	t.Helper()
	key := fmt.Sprintf("random-%d-%d", size, seed)
	dataMu.Lock()
	defer dataMu.Unlock()
	if p, ok := dataFiles[key]; ok {
		return p
	}
	p := filepath.Join(dataDir, key+".bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	if _, err := io.CopyN(f, rand.NewChaCha8(s), size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dataFiles[key] = p
	return p
}

// linkOrCopy puts src at dst (a hard link when possible).
func linkOrCopy(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Link(src, dst); err == nil {
		return
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// --- running tools ----------------------------------------------------------

// runner runs a client with extra environment (per-test configs).
type runner struct {
	t   *testing.T
	env []string
	dir string
}

func (r runner) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Dir = r.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// try runs name and returns its stdout, stderr and error.
func (r runner) try(name string, args ...string) (string, string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := r.cmd(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r.t.Logf("$ %s %s  [%v, %s]", name, strings.Join(args, " "), exitStatus(err), time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

// run runs name and fails the test unless it exits 0; it returns stdout.
func (r runner) run(name string, args ...string) string {
	r.t.Helper()
	out, errOut, err := r.try(name, args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, clip(out), clip(errOut))
	}
	return out
}

// fails runs name and fails the test if it exits 0; it returns stderr.
func (r runner) fails(name string, args ...string) string {
	r.t.Helper()
	out, errOut, err := r.try(name, args...)
	if err == nil {
		r.t.Fatalf("%s %s succeeded, want an error\nstdout:\n%s", name, strings.Join(args, " "), clip(out))
	}
	return errOut
}

var (
	exitStatus = harness.ExitStatus
	clip       = harness.Clip
)

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// --- registry over HTTP -----------------------------------------------------

const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayerGzip   = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

var acceptManifests = strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ", ")

type httpResult = harness.Response

var httpDo = harness.Do

// manifest GETs repo's manifest ref and checks the digest berth reports
// against the body.
type manifestResp struct {
	Body      []byte
	Digest    string
	MediaType string
}

func getManifest(t *testing.T, b *harness.Berth, repo, ref string) manifestResp {
	t.Helper()
	r := httpDo(t, http.MethodGet, b.URL()+"/v2/"+repo+"/manifests/"+ref, map[string]string{"Accept": acceptManifests}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: status %d: %s", repo, ref, r.Status, r.Body)
	}
	d := digestOf(r.Body)
	if got := r.Header.Get("Docker-Content-Digest"); got != d {
		t.Fatalf("GET manifest %s:%s: Docker-Content-Digest %s, body digests to %s", repo, ref, got, d)
	}
	return manifestResp{Body: r.Body, Digest: d, MediaType: r.Header.Get("Content-Type")}
}

func headManifestStatus(t *testing.T, b *harness.Berth, repo, ref string) int {
	t.Helper()
	return httpDo(t, http.MethodHead, b.URL()+"/v2/"+repo+"/manifests/"+ref, map[string]string{"Accept": acceptManifests}, nil).Status
}

func headBlobStatus(t *testing.T, b *harness.Berth, repo, dgst string) int {
	t.Helper()
	return httpDo(t, http.MethodHead, b.URL()+"/v2/"+repo+"/blobs/"+dgst, nil, nil).Status
}

func tagList(t *testing.T, b *harness.Berth, repo string) []string {
	t.Helper()
	r := httpDo(t, http.MethodGet, b.URL()+"/v2/"+repo+"/tags/list", nil, nil)
	if r.Status == http.StatusNotFound {
		return nil
	}
	if r.Status != http.StatusOK {
		t.Fatalf("GET tags/list of %s: status %d: %s", repo, r.Status, r.Body)
	}
	var tl struct {
		Tags []string `json:"tags"`
	}
	mustJSON(t, r.Body, &tl)
	slices.Sort(tl.Tags)
	return tl.Tags
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, clip(string(data)))
	}
}

// Descriptor, Manifest, Index: the fields the tests read.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// --- storage root -----------------------------------------------------------

// blobDataPath is where berth (distribution's layout) keeps a blob's bytes.
func blobDataPath(root, dgst string) string {
	hexPart := strings.TrimPrefix(dgst, "sha256:")
	return filepath.Join(root, "docker/registry/v2/blobs/sha256", hexPart[:2], hexPart, "data")
}

// filesOfSize lists the regular files under root of exactly size bytes.
func filesOfSize(t *testing.T, root string, size int64) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() == size {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// --- tar --------------------------------------------------------------------

// fileFromTar returns the content of the regular file named name (leading
// "/" and "./" ignored) in a tar stream, hashing instead of keeping it when
// it is bigger than keepMax.
func fileFromTar(t *testing.T, r io.Reader, name string) (content []byte, sha string, found bool) {
	t.Helper()
	want := strings.TrimPrefix(strings.TrimPrefix(name, "/"), "./")
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, "", false
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		got := strings.TrimPrefix(strings.TrimPrefix(h.Name, "/"), "./")
		if got != want || h.Typeflag != tar.TypeReg {
			continue
		}
		hs := sha256.New()
		var buf bytes.Buffer
		w := io.Writer(hs)
		if h.Size <= 1*MiB {
			w = io.MultiWriter(hs, &buf)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatalf("reading %s from tar: %v", name, err)
		}
		return buf.Bytes(), hex.EncodeToString(hs.Sum(nil)), true
	}
}
