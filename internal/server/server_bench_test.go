package server_test

// Benchmarks of berth's hot paths through the whole stack (API handler,
// content model, bbolt index, filesystem driver) over a real storage root:
// manifest HEAD/GET by tag, blob uploads, catalog and tag listings, and
// start-up (index rebuild and reopening an existing index). They are for
// profiling (-cpuprofile, -memprofile) and for comparing commits with
// benchstat; bench/compare.sh measures berth against distribution.
//
// Listing and start-up benchmarks seed a registry:2 tree of
// BERTH_BENCH_ENTRIES repositories plus one repository with as many tags
// (default 1000; the figures use 10000).

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/bench/seed"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/notify"
	"github.com/berth-registry/berth/internal/server"
)

const benchAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

func benchEntries(b *testing.B) int {
	if s := os.Getenv("BERTH_BENCH_ENTRIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BERTH_BENCH_ENTRIES=%q: want a positive number", s)
		}
		return n
	}
	return 1000
}

func benchServer(b *testing.B, root string) http.Handler {
	b.Helper()
	return benchServerWith(b, root, server.Options{})
}

// benchServerWith is benchServer with more options set (the root, deletes
// and a silent logger are always set).
func benchServerWith(b *testing.B, root string, opts server.Options) http.Handler {
	b.Helper()
	opts.RootDirectory, opts.DeleteEnabled, opts.Logger = root, true, slog.New(slog.DiscardHandler)
	srv, err := server.New(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	if err := srv.WaitIndex(context.Background()); err != nil {
		b.Fatal(err)
	}
	return srv.Handler()
}

// benchWriter is a ResponseWriter that keeps only the status and the byte
// count, so handler benchmarks measure the handler and not a recorder.
type benchWriter struct {
	hdr    http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.hdr }
func (w *benchWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *benchWriter) reset() {
	clear(w.hdr)
	w.status, w.n = 0, 0
}

// benchDo runs one request through the handler and checks the status.
func benchDo(b *testing.B, h http.Handler, method, target string, body []byte, hdr map[string]string, want int) *httptest.ResponseRecorder {
	b.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: status %d, want %d: %s", method, target, rec.Code, want, rec.Body.String())
	}
	return rec
}

// benchPushImage pushes a one-layer image through the API.
func benchPushImage(b *testing.B, h http.Handler, repo, tag string) seed.Image {
	b.Helper()
	layer := make([]byte, 4096)
	rand.Read(layer)
	img := seed.NewImage(seed.ConfigJSON(digest.FromBytes(layer), repo), layer, repo+":"+tag)
	for _, blob := range [][]byte{img.Config, img.Layer} {
		benchDo(b, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+string(digest.FromBytes(blob)), blob, nil, http.StatusCreated)
	}
	benchDo(b, h, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, img.Manifest,
		map[string]string{"Content-Type": seed.MediaTypeManifest}, http.StatusCreated)
	return img
}

// BenchmarkManifestByTag is what every pull starts with. "handler" calls
// the handler directly (server-side cost only); "http" goes through a real
// listener and net/http on both ends with keep-alive connections.
func BenchmarkManifestByTag(b *testing.B) {
	h := benchServer(b, b.TempDir())
	img := benchPushImage(b, h, "bench/app", "latest")
	const target = "/v2/bench/app/manifests/latest"
	// The same registry with Prometheus metrics on: what they cost.
	withMetrics := benchServerWith(b, b.TempDir(), server.Options{Metrics: metrics.New("bench")})
	benchPushImage(b, withMetrics, "bench/app", "latest")
	// And with a notifications endpoint: what emitting costs a request.
	// The receiver cannot keep up with GETs, so the queue fills and Emit
	// drops the oldest event: the dearest path.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	b.Cleanup(receiver.Close)
	n, err := notify.New(notify.Options{Endpoints: []notify.Endpoint{{Name: "bench", URL: receiver.URL}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	withNotify := benchServerWith(b, b.TempDir(), server.Options{Notifier: n})
	benchPushImage(b, withNotify, "bench/app", "latest")
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		for _, c := range []struct {
			name string
			h    http.Handler
		}{{"handler", h}, {"handler-metrics", withMetrics}, {"handler-notify", withNotify}} {
			b.Run(method+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req := httptest.NewRequest(method, target, nil)
					req.Header.Set("Accept", benchAccept)
					w := &benchWriter{hdr: http.Header{}}
					for pb.Next() {
						w.reset()
						c.h.ServeHTTP(w, req)
						if w.status != http.StatusOK {
							b.Fatalf("status %d", w.status)
						}
					}
				})
			})
		}
		b.Run(method+"/http", func(b *testing.B) {
			ts := httptest.NewServer(h)
			defer ts.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(method, ts.URL+target, nil)
				req.Header.Set("Accept", benchAccept)
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || (method == http.MethodGet && n != int64(len(img.Manifest))) {
						b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
					}
				}
			})
		})
	}
}

// BenchmarkBlobUpload pushes blobs over HTTP the three ways clients do:
// "monolithic" (one POST with ?digest=), "post-put" (POST, then PUT with the
// body; what distribution calls monolithic) and "chunked" (POST, PATCH in
// 8 MiB chunks, PUT). Each iteration uploads new content (its digest is
// computed with the timer stopped), so every upload is stored, not deduped.
func BenchmarkBlobUpload(b *testing.B) {
	h := benchServer(b, b.TempDir())
	ts := httptest.NewServer(h)
	defer ts.Close()
	client := ts.Client()
	const chunk = 8 << 20
	do := func(b *testing.B, method, url string, body []byte, hdr map[string]string, want int) *http.Response {
		var r io.Reader = http.NoBody
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, url, r)
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, msg)
		}
		return resp
	}
	for _, size := range []int{1 << 20, 64 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		for _, mode := range []string{"monolithic", "post-put", "chunked"} {
			b.Run(fmt.Sprintf("%s/%dMiB", mode, size>>20), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					copy(data, fmt.Sprintf("%s-%d-%d;", mode, size, i))
					d := string(digest.FromBytes(data))
					b.StartTimer()
					base := ts.URL + "/v2/bench/upload/blobs/uploads/"
					if mode == "monolithic" {
						do(b, http.MethodPost, base+"?digest="+d, data, nil, http.StatusCreated)
						continue
					}
					loc := do(b, http.MethodPost, base, nil, nil, http.StatusAccepted).Header.Get("Location")
					if mode == "chunked" {
						for off := 0; off < size; off += chunk {
							end := min(off+chunk, size)
							loc = do(b, http.MethodPatch, ts.URL+loc, data[off:end], map[string]string{
								"Content-Type":  "application/octet-stream",
								"Content-Range": fmt.Sprintf("%d-%d", off, end-1),
							}, http.StatusAccepted).Header.Get("Location")
						}
						do(b, http.MethodPut, ts.URL+loc+"?digest="+d, nil, nil, http.StatusCreated)
						continue
					}
					do(b, http.MethodPut, ts.URL+loc+"?digest="+d, data,
						map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
				}
			})
		}
	}
}

// BenchmarkPushSmallImage is the whole push of a small image (1 KiB layer,
// config, manifest by tag), as in the "200 small images" figure, through
// the handler: mostly small files, fsyncs and index updates.
func BenchmarkPushSmallImage(b *testing.B) {
	h := benchServer(b, b.TempDir())
	layer := make([]byte, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rand.Read(layer)
		repo := fmt.Sprintf("bench/small%d", i)
		img := seed.NewImage(seed.ConfigJSON(digest.FromBytes(layer), repo), layer, repo)
		b.StartTimer()
		for _, blob := range []struct {
			data []byte
			d    digest.Digest
		}{{img.Layer, img.LayerDigest}, {img.Config, img.ConfigDigest}} {
			loc := benchDo(b, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted).Header().Get("Location")
			loc = benchDo(b, h, http.MethodPatch, loc, blob.data, nil, http.StatusAccepted).Header().Get("Location")
			benchDo(b, h, http.MethodPut, loc+"?digest="+string(blob.d), nil, nil, http.StatusCreated)
		}
		benchDo(b, h, http.MethodPut, "/v2/"+repo+"/manifests/latest", img.Manifest,
			map[string]string{"Content-Type": seed.MediaTypeManifest}, http.StatusCreated)
	}
}

func benchSeed(b *testing.B, n int) string {
	b.Helper()
	root := b.TempDir()
	if _, err := seed.Write(seed.Options{Root: root, Repos: n, Tags: n}); err != nil {
		b.Fatal(err)
	}
	return root
}

// BenchmarkListing pages through the catalog and a repository's tags on a
// seeded tree (served from the index; distribution walks storage).
func BenchmarkListing(b *testing.B) {
	n := benchEntries(b)
	h := benchServer(b, benchSeed(b, n))
	whole := strconv.Itoa(min(n, 10000))
	mid := seed.RepoName(n / 2)
	cases := []struct{ name, target string }{
		{"catalog/n=" + whole, "/v2/_catalog?n=" + whole},
		{"catalog/n=100", "/v2/_catalog?n=100"},
		{"catalog/n=100,middle", "/v2/_catalog?n=100&last=" + mid},
		{"tags/all", "/v2/" + seed.DefaultTagRepo + "/tags/list"},
		{"tags/n=100,middle", "/v2/" + seed.DefaultTagRepo + "/tags/list?n=100&last=" + seed.TagName(n/2)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.target, nil)
			w := &benchWriter{hdr: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.SetBytes(int64(w.n))
		})
	}
}

// BenchmarkStartup opens a server over a seeded tree: "rebuild" without an
// index (first start over a registry:2 tree, or after a crash), "index"
// with a cleanly closed one.
func BenchmarkStartup(b *testing.B) {
	n := benchEntries(b)
	root := benchSeed(b, n)
	idx := filepath.Join(root, "berth", "index.db")
	open := func(b *testing.B) {
		srv, err := server.New(context.Background(), server.Options{RootDirectory: root, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		// Over a tree without an index, New returns while the index is
		// built in the background: the start-up is done when it is.
		if err := srv.WaitIndex(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := srv.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("rebuild", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := os.Remove(idx); err != nil && !os.IsNotExist(err) {
				b.Fatal(err)
			}
			open(b)
		}
		b.ReportMetric(float64(n+1)*float64(b.N)/b.Elapsed().Seconds(), "repos/s")
	})
	b.Run("index", func(b *testing.B) {
		open(b) // make sure a clean index exists
		b.ReportAllocs()
		for b.Loop() {
			open(b)
		}
	})
}
