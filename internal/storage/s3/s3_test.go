package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

func TestDriver(t *testing.T) {
	startedServer(t)
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, _, _ := newTestDriver(t, "/registry/root")
		return d
	})
}

// TestDriverBucketRoot runs a part of the suite's ground again with no
// root directory, where keys are the paths without their leading slash.
func TestDriverBucketRoot(t *testing.T) {
	d, _, _ := newTestDriver(t, "")
	ctx := context.Background()
	storagetest.MustPut(t, d, "/a/b", []byte("b"))
	storagetest.MustPut(t, d, "/c", []byte("c"))
	got, err := d.List(ctx, "/")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"/a", "/c"}) {
		t.Fatalf("List(/) = %q, %v", got, err)
	}
	if info, err := d.Stat(ctx, "/a"); err != nil || !info.IsDir {
		t.Fatalf("Stat(/a) = %+v, %v", info, err)
	}
	if err := d.Delete(ctx, "/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got, err := d.List(ctx, "/"); err != nil || !slices.Equal(got, []string{"/c"}) {
		t.Fatalf("List(/) = %q, %v", got, err)
	}
}

// TestResumeAcrossInstances continues one object from two drivers (two
// berth processes on one bucket), with sessions below, at and above S3's
// 5 MiB part minimum, and checks that the path Stats with the stored size
// after every Close (the content layer reads an upload's size that way).
func TestResumeAcrossInstances(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name     string
		sessions []int
	}{
		{"small chunks", []int{1000, 3 * mib, 1, 0, 2 * mib}},
		{"crossing 5 MiB", []int{4 * mib, 2 * mib, 100}},
		{"exactly a part", []int{5 * mib, 5 * mib, 0}},
		{"large chunks", []int{7 * mib, 11*mib + 3, 6 * mib}},
		{"small after large", []int{12 * mib, 10, 20, 3 * mib}},
		{"empty first", []int{0, 6 * mib}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d1, s, bucket := newTestDriver(t, "/root")
			d2, err := New(context.Background(), s.params(bucket, "/root"))
			if err != nil {
				t.Fatal(err)
			}
			storagetest.ResumeAcrossInstances(t, d1, d2, tc.sessions, mib, uint64(i))
			assertNoUploads(t, s, bucket)
		})
	}
}

// TestResumeAfterCrash abandons a session that has uploaded parts, as a
// killed process would, and continues from another driver: the object
// keeps what the last Close stored, and the orphaned upload is aborted.
func TestResumeAfterCrash(t *testing.T) {
	d1, s, bucket := newTestDriver(t, "")
	d2, err := New(context.Background(), s.params(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const p = "/_uploads/crash/data"
	first := storagetest.RandomBytes(1, 6<<20+5)
	w, err := d1.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(first)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The doomed session: two full parts reach the bucket, then nothing.
	w, err = d1.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(storagetest.RandomBytes(2, 11<<20))
	w.(*writer).wg.Wait()
	if n := countUploads(t, s, bucket); n != 1 {
		t.Fatalf("%d incomplete uploads while the session is open, want 1", n)
	}

	w2, err := d2.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Size() != int64(len(first)) {
		t.Fatalf("Size after the crash = %d, want %d", w2.Size(), len(first))
	}
	second := storagetest.RandomBytes(3, 1<<20)
	w2.Write(second)
	if err := w2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w2.Close()
	if got := storagetest.MustGet(t, d2, p); !bytes.Equal(got, append(first, second...)) {
		t.Fatalf("content differs: %d bytes", len(got))
	}
	assertNoUploads(t, s, bucket)
}

func countUploads(t testing.TB, s *s3Server, bucket string) int {
	t.Helper()
	n := 0
	for u := range s.client().ListIncompleteUploads(context.Background(), bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list uploads: %v", u.Err)
		}
		n++
	}
	return n
}

func assertNoUploads(t testing.TB, s *s3Server, bucket string) {
	t.Helper()
	if n := countUploads(t, s, bucket); n != 0 {
		t.Errorf("%d incomplete multipart uploads left behind", n)
	}
}

// TestKeyLayout checks that objects land at registry:2's keys, and that
// objects written there by someone else (registry:2) are served.
func TestKeyLayout(t *testing.T) {
	const blob = "/docker/registry/v2/blobs/sha256/ab/abcdef/data"
	for _, tc := range []struct{ root, prefix string }{
		{"", ""},
		{"/", ""},
		{"/registry", "registry/"},
		{"registry/", "registry/"},
		{"/s3/object/name/prefix/", "s3/object/name/prefix/"},
	} {
		t.Run("root="+tc.root, func(t *testing.T) {
			d, s, bucket := newTestDriver(t, tc.root)
			ctx := context.Background()
			raw := s.client()

			storagetest.MustPut(t, d, blob, []byte("blob"))
			w, err := d.Writer(ctx, "/docker/registry/v2/repositories/lib/app/_uploads/u1/data", false)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("upload"))
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if err := d.Move(ctx, "/docker/registry/v2/repositories/lib/app/_uploads/u1/data", "/docker/registry/v2/blobs/sha256/cd/cdef/data"); err != nil {
				t.Fatal(err)
			}

			var keys []string
			for obj := range raw.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if obj.Err != nil {
					t.Fatal(obj.Err)
				}
				keys = append(keys, obj.Key)
			}
			want := []string{
				tc.prefix + "docker/registry/v2/blobs/sha256/ab/abcdef/data",
				tc.prefix + "docker/registry/v2/blobs/sha256/cd/cdef/data",
			}
			if !slices.Equal(keys, want) {
				t.Fatalf("keys = %q, want %q", keys, want)
			}

			// A tag link as registry:2 writes it.
			link := tc.prefix + "docker/registry/v2/repositories/lib/app/_manifests/tags/latest/current/link"
			if _, err := raw.PutObject(ctx, bucket, link, bytes.NewReader([]byte("sha256:abcdef")), 13, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := storagetest.MustGet(t, d, "/docker/registry/v2/repositories/lib/app/_manifests/tags/latest/current/link"); string(got) != "sha256:abcdef" {
				t.Fatalf("link = %q", got)
			}
			tags, err := d.List(ctx, "/docker/registry/v2/repositories/lib/app/_manifests/tags")
			if err != nil || !slices.Equal(tags, []string{"/docker/registry/v2/repositories/lib/app/_manifests/tags/latest"}) {
				t.Fatalf("List(tags) = %q, %v", tags, err)
			}
			if got, err := d.List(ctx, "/"); err != nil || !slices.Equal(got, []string{"/docker"}) {
				t.Fatalf("List(/) = %q, %v", got, err)
			}
		})
	}
}

// TestCABundle runs the driver over HTTPS through a TLS proxy whose
// certificate only AWS_CA_BUNDLE vouches for.
func TestCABundle(t *testing.T) {
	s := startedServer(t)
	bucket := s.newBucket(t)
	proxy := newProxy(t, s, true)
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := s.params(bucket, "/ca")
	p.RegionEndpoint = proxy.URL // https://127.0.0.1:port

	t.Run("trusted through the bundle", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", bundle)
		d, err := New(ctx, p)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		storagetest.MustPut(t, d, "/x", []byte("over tls"))
		if got := storagetest.MustGet(t, d, "/x"); string(got) != "over tls" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("system bundle only", func(t *testing.T) {
		// This machine sets AWS_CA_BUNDLE to the system bundle, which
		// must load fine and not vouch for the test CA.
		t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
		if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
			t.Setenv("AWS_CA_BUNDLE", "")
		}
		d, err := New(ctx, p)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if _, err := d.GetContent(ctx, "/x"); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetContent through an untrusted certificate = %v, want a TLS error", err)
		}
	})
	t.Run("skipverify", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", "")
		p := p
		p.SkipVerify = true
		d, err := New(ctx, p)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if got := storagetest.MustGet(t, d, "/x"); string(got) != "over tls" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("unreadable bundle", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "missing.pem"))
		if _, err := New(ctx, p); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
			t.Fatalf("New with a missing bundle over https = %v, want an AWS_CA_BUNDLE error", err)
		}
		// Plain HTTP has no use for it.
		if _, err := New(ctx, s.params(bucket, "/ca")); err != nil {
			t.Fatalf("New over http with a missing bundle: %v", err)
		}
	})
	t.Run("bundle without certificates", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk.pem")
		os.WriteFile(junk, []byte("not a certificate\n"), 0o644)
		t.Setenv("AWS_CA_BUNDLE", junk)
		if _, err := New(ctx, p); err == nil {
			t.Fatal("New with a bundle holding no certificate succeeded")
		}
	})
}

// proxy is a reverse proxy in front of the test server that can count
// and hold part uploads.
type proxy struct {
	*httptest.Server
	mu       sync.Mutex
	inflight int // part uploads in flight
	maxSeen  int
	gate     chan struct{} // closed once gateN part uploads are in flight
	gateN    int
	failPart bool // answer part uploads with an error
}

func newProxy(t testing.TB, s *s3Server, tls bool) *proxy {
	target, _ := url.Parse("http://" + s.endpoint)
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	px := &proxy{}
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		isPart := r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" && r.Header.Get("X-Amz-Copy-Source") == ""
		if !isPart {
			rp.ServeHTTP(rw, r)
			return
		}
		px.mu.Lock()
		if px.failPart {
			px.mu.Unlock()
			io.Copy(io.Discard, r.Body)
			rw.Header().Set("Content-Type", "application/xml")
			rw.WriteHeader(http.StatusForbidden)
			io.WriteString(rw, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected failure</Message></Error>`)
			return
		}
		px.inflight++
		px.maxSeen = max(px.maxSeen, px.inflight)
		gate := px.gate
		if gate != nil && px.inflight >= px.gateN {
			close(gate)
			px.gate = nil
		}
		px.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-time.After(20 * time.Second):
				// Not a synchronisation sleep: a bound so that a writer
				// that never reaches gateN parts in flight fails the
				// test instead of hanging it.
			}
		}
		rp.ServeHTTP(rw, r)
		px.mu.Lock()
		px.inflight--
		px.mu.Unlock()
	})
	if tls {
		px.Server = httptest.NewTLSServer(handler)
	} else {
		px.Server = httptest.NewServer(handler)
	}
	t.Cleanup(px.Close)
	return px
}

// TestParallelPartsBoundedMemory streams 64 MiB through Write and checks
// that parts upload UploadConcurrency at a time while the writer never
// holds more than UploadConcurrency+1 buffers.
func TestParallelPartsBoundedMemory(t *testing.T) {
	s := startedServer(t)
	bucket := s.newBucket(t)
	px := newProxy(t, s, false)
	const concurrency = 4
	px.gate, px.gateN = make(chan struct{}), concurrency
	p := s.params(bucket, "")
	p.RegionEndpoint = px.URL
	p.UploadConcurrency = concurrency
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fw, err := d.Writer(ctx, "/big", false)
	if err != nil {
		t.Fatal(err)
	}
	w := fw.(*writer)
	const size = 64 << 20
	src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
	sum := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, io.TeeReader(src, sum), buf); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()

	px.mu.Lock()
	maxSeen := px.maxSeen
	px.mu.Unlock()
	if maxSeen != concurrency {
		t.Errorf("at most %d part uploads were in flight at once, want %d", maxSeen, concurrency)
	}
	w.mu.Lock()
	peak, held := w.peak, w.buffers
	w.mu.Unlock()
	if peak > concurrency+1 {
		t.Errorf("writer held %d part buffers at once, want at most %d", peak, concurrency+1)
	}
	if held != 0 || d.bufs.Held() != 0 {
		t.Errorf("%d buffers (driver: %d) still held after Close", held, d.bufs.Held())
	}
	t.Logf("peak part buffers %d of %d MiB; %d part uploads in flight at most", peak, p.ChunkSize>>20, maxSeen)

	r, err := d.Reader(ctx, "/big", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	if n, err := io.Copy(got, r); err != nil || n != size {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), sum.Sum(nil)) {
		t.Fatal("content differs")
	}
}

// TestFailedSessionKeepsObject makes part uploads fail in the middle of a
// resumed session: the session is lost as a whole, Size falls back to what
// is stored, and the stored object and bucket are as before.
func TestFailedSessionKeepsObject(t *testing.T) {
	s := startedServer(t)
	bucket := s.newBucket(t)
	px := newProxy(t, s, false)
	p := s.params(bucket, "")
	p.RegionEndpoint = px.URL
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := storagetest.RandomBytes(4, 3<<20)
	w, _ := d.Writer(ctx, "/f", false)
	w.Write(first)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	px.mu.Lock()
	px.failPart = true
	px.mu.Unlock()
	w, err = d.Writer(ctx, "/f", true)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		_, werr = w.Write(storagetest.RandomBytes(uint64(10+i), 1<<20))
	}
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("neither Write nor Close reported the failed part uploads")
	}
	if w.Size() != int64(len(first)) {
		t.Fatalf("Size after failure = %d, want %d", w.Size(), len(first))
	}
	px.mu.Lock()
	px.failPart = false
	px.mu.Unlock()
	if got := storagetest.MustGet(t, d, "/f"); !bytes.Equal(got, first) {
		t.Fatalf("object changed by a failed session: %d bytes", len(got))
	}
	assertNoUploads(t, s, bucket)
}

// TestMoveMultipartCopy moves objects above the multipart copy threshold.
func TestMoveMultipartCopy(t *testing.T) {
	d, _, _ := newTestDriver(t, "/mv")
	ctx := context.Background()
	content := storagetest.RandomBytes(5, 13<<20+1)
	w, _ := d.Writer(ctx, "/src", false)
	w.Write(content)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := d.Move(ctx, "/src", "/blobs/dst"); err != nil {
		t.Fatal(err)
	}
	if got := storagetest.MustGet(t, d, "/blobs/dst"); !bytes.Equal(got, content) {
		t.Fatal("content differs after a multipart copy")
	}
	if _, err := d.Stat(ctx, "/src"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(src) = %v", err)
	}
}

func TestURLFor(t *testing.T) {
	d, _, _ := newTestDriver(t, "/u")
	ctx := context.Background()
	storagetest.MustPut(t, d, "/blob", []byte("presigned"))
	u, err := d.URLFor(ctx, "/blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "presigned" {
		t.Fatalf("GET presigned URL = %d %q", resp.StatusCode, body)
	}
	u, err = d.URLForMethod(ctx, http.MethodHead, "/blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Head(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len("presigned")) {
		t.Fatalf("HEAD presigned URL = %d, length %d", resp.StatusCode, resp.ContentLength)
	}
}

func TestCopyRanges(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ size, chunk int64 }{
		{5 * mib, 32 * mib},
		{33 * mib, 32 * mib},
		{64 * mib, 32 * mib},
		{13*mib + 1, 5 * mib},
		{12 << 30, 5 << 30},
		{11 << 30, 32 * mib},
	} {
		rs := copyRanges(tc.size, tc.chunk)
		var off int64
		for i, r := range rs {
			if r.off != off {
				t.Fatalf("%+v: range %d starts at %d, want %d", tc, i, r.off, off)
			}
			if r.n < minPartSize || r.n > maxPartSize {
				t.Fatalf("%+v: range %d has %d bytes", tc, i, r.n)
			}
			off += r.n
		}
		if off != tc.size || len(rs) > maxParts {
			t.Fatalf("%+v: %d ranges cover %d bytes", tc, len(rs), off)
		}
	}
}

// TestCredentialsFromEnvironment leaves the keys out of the parameters:
// they come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or from the
// shared credentials file and AWS_PROFILE.
func TestCredentialsFromEnvironment(t *testing.T) {
	s := startedServer(t)
	bucket := s.newBucket(t)
	ctx := context.Background()
	p := s.params(bucket, "/creds")
	p.AccessKey, p.SecretKey = "", ""
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"} {
		t.Setenv(k, "")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	// No instance metadata service here: keep the role lookup from
	// wandering off to 169.254.169.254 if a case falls through.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	use := func(t *testing.T) error {
		t.Helper()
		d, err := New(ctx, p)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return d.PutContent(ctx, "/x", []byte("x"))
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
		if err := use(t); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		if err := use(t); err == nil {
			t.Fatal("a wrong secret from the environment worked")
		}
	})
	creds := "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n[berth]\naws_access_key_id = " + testAccessKey + "\naws_secret_access_key = " + testSecretKey + "\n"
	t.Run("shared file in HOME with AWS_PROFILE", func(t *testing.T) {
		os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
		if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Join(home, ".aws")) })
		t.Setenv("AWS_PROFILE", "berth")
		if err := use(t); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_PROFILE", "")
		if err := use(t); err == nil {
			t.Fatal("the default profile's wrong keys worked")
		}
	})
	t.Run("AWS_SHARED_CREDENTIALS_FILE", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "creds")
		if err := os.WriteFile(f, []byte(strings.ReplaceAll(creds, "[berth]", "[other]")), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", f)
		t.Setenv("AWS_PROFILE", "other")
		if err := use(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeleteAbortsCrashedUploads deletes directories below which a killed
// process left multipart uploads: one beside objects (an upload's data
// whose PATCH never ended, next to its startedat), one alone (a monolithic
// upload that never finished, which no listing shows). Nothing of them may
// stay in the bucket; an upload elsewhere is left alone.
func TestDeleteAbortsCrashedUploads(t *testing.T) {
	d, s, bucket := newTestDriver(t, "/registry")
	ctx := context.Background()
	crash := func(p string) {
		t.Helper()
		w, err := d.Writer(ctx, p, false)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(storagetest.RandomBytes(7, 11<<20))
		w.(*writer).wg.Wait() // two parts stored; never closed, as if killed
	}
	const uploads = "/docker/registry/v2/repositories/lib/app/_uploads"
	storagetest.MustPut(t, d, uploads+"/u1/startedat", []byte("2024-01-01T00:00:00Z"))
	crash(uploads + "/u1/data")
	crash(uploads + "/u2/data")
	crash(uploads + "/u22/data") // a sibling whose name u2 is a prefix of
	if n := countUploads(t, s, bucket); n != 3 {
		t.Fatalf("%d incomplete uploads, want 3", n)
	}

	if err := d.Delete(ctx, uploads+"/u1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := countUploads(t, s, bucket); n != 2 {
		t.Fatalf("after deleting u1: %d incomplete uploads, want 2", n)
	}
	// No object is there, so the path does not exist, but the upload is
	// aborted all the same.
	if err := d.Delete(ctx, uploads+"/u2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete of a directory holding only an incomplete upload: %v, want ErrNotFound", err)
	}
	if n := countUploads(t, s, bucket); n != 1 {
		t.Fatalf("after deleting u2: %d incomplete uploads, want 1 (u22's)", n)
	}
	if err := d.Delete(ctx, uploads); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete of the uploads directory: %v, want ErrNotFound", err)
	}
	assertNoUploads(t, s, bucket)
}
