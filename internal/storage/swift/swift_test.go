package swift

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

const mib = 1 << 20

func TestDriver(t *testing.T) {
	startedSwift(t)
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		d, _, _ := newTestDriver(t, "/registry/root")
		return d
	})
}

// TestDriverDefaultChunkSize runs the writer tests of the suite again with
// registry:2's 20 MiB segments, where every object but the largest is a
// plain object.
func TestDriverDefaultChunkSize(t *testing.T) {
	startedSwift(t)
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		if !strings.HasPrefix(t.Name(), "TestDriverDefaultChunkSize/Writer") && !strings.HasSuffix(t.Name(), "/LargeObject") {
			t.Skip("covered by TestDriver")
		}
		d, _, _ := newTestDriver(t, "", func(p *Params) { p.ChunkSize = DefaultChunkSize })
		return d
	})
}

// writeSession writes b through a Writer in 1 MiB pieces, as the content
// layer does, then commits (if commit) and closes.
func writeSession(t testing.TB, d storage.Driver, p string, resume bool, b []byte, commit bool) {
	t.Helper()
	ctx := context.Background()
	w, err := d.Writer(ctx, p, resume)
	if err != nil {
		t.Fatalf("Writer(%s, %v): %v", p, resume, err)
	}
	for rest := b; len(rest) > 0; {
		n := min(len(rest), mib)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	if commit {
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// rawObject is an object as Swift lists it, with its manifest header.
type rawObject struct {
	name     string
	size     int64
	manifest string
	ctype    string
}

// rawObjects lists the whole container, reading every empty object's
// headers.
func rawObjects(t testing.TB, s *swiftServer, container string) []rawObject {
	t.Helper()
	ctx := context.Background()
	c := s.conn()
	objs, err := c.ObjectsAll(ctx, container, nil)
	if err != nil {
		t.Fatalf("list %s: %v", container, err)
	}
	var out []rawObject
	for _, o := range objs {
		r := rawObject{name: o.Name, size: o.Bytes, ctype: o.ContentType}
		if o.Bytes == 0 {
			_, h, err := c.Object(ctx, container, o.Name)
			if err != nil {
				t.Fatalf("HEAD %s: %v", o.Name, err)
			}
			r.manifest = h["X-Object-Manifest"]
		}
		out = append(out, r)
	}
	return out
}

// segmentsOf returns the names and sizes of the objects below prefix.
func segmentsOf(t testing.TB, s *swiftServer, container, prefix string) ([]string, []int64) {
	t.Helper()
	objs, err := s.conn().ObjectsAll(context.Background(), container, &swift.ObjectsOpts{Prefix: prefix})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	var names []string
	var sizes []int64
	for _, o := range objs {
		names = append(names, o.Name)
		sizes = append(sizes, o.Bytes)
	}
	return names, sizes
}

// assertNoOrphanSegments checks that every segment in the container
// belongs to a manifest: nothing a driver wrote and gave up is left.
func assertNoOrphanSegments(t testing.TB, s *swiftServer, container, segmentsRoot string) {
	t.Helper()
	objs := rawObjects(t, s, container)
	referenced := map[string]bool{}
	for _, o := range objs {
		if o.manifest != "" {
			_, prefix := parseManifest(o.manifest)
			referenced[prefix] = true
		}
	}
	for _, o := range objs {
		if !strings.HasPrefix(o.name, segmentsRoot) {
			continue
		}
		if i := strings.LastIndex(o.name, "/"); i < 0 || !referenced[o.name[:i]] {
			t.Errorf("orphan segment %s", o.name)
		}
	}
}

func TestObjectNames(t *testing.T) {
	for _, tc := range []struct {
		prefix, path, want string
	}{
		{"", "/", "files"},
		{"", "/docker/registry/v2/blobs", "files/docker/registry/v2/blobs"},
		{"/", "/a", "files/a"},
		{"/registry", "/a/b", "registry/files/a/b"},
		{"registry", "/", "registry/files"},
		// registry:2 does not clean a trailing slash: neither may berth.
		{"/registry/", "/a", "registry//files/a"},
		{"/deep/er", "/x", "deep/er/files/x"},
	} {
		d := &Driver{params: Params{Prefix: tc.prefix}}
		if got := d.ObjectName(tc.path); got != tc.want {
			t.Errorf("prefix %q: ObjectName(%q) = %q, want %q", tc.prefix, tc.path, got, tc.want)
		}
	}
	d := &Driver{params: Params{Prefix: "/registry"}}
	re := regexp.MustCompile(`^registry/segments/[0-9a-f]{3}/[0-9a-f]{37}$`)
	seen := map[string]bool{}
	for range 100 {
		p := d.newSegmentPrefix()
		if !re.MatchString(p) || seen[p] {
			t.Fatalf("segment prefix %q: not registry:2's shape, or repeated", p)
		}
		seen[p] = true
	}
	if got := segmentName("s/abc/def", 12); got != "s/abc/def/0000000000000012" {
		t.Fatalf("segmentName = %q", got)
	}
}

// TestLayout checks the objects the driver leaves in Swift against
// registry:2's layout: manifests and plain objects under prefix/files,
// segments under prefix/segments, numbered from 1, each ChunkSize but the
// last, and moves and deletes that copy manifests, never data.
func TestLayout(t *testing.T) {
	d, s, p := newTestDriver(t, "/reg")
	ctx := context.Background()
	const repo = "/docker/registry/v2/repositories/lib/app"
	upload := repo + "/_uploads/0f6c4b1e-7a21-4b38-9d55-2b8f1d3c6a90/data"
	blob := "/docker/registry/v2/blobs/sha256/ab/ab12/data"
	content := storagetest.RandomBytes(1, 3*mib+mib/2)
	writeSession(t, d, upload, false, content, false)

	objs := rawObjects(t, s, p.Container)
	var manifest string
	for _, o := range objs {
		if o.name == "reg/files"+upload {
			manifest = o.manifest
			if o.ctype != contentType {
				t.Errorf("manifest content type %q", o.ctype)
			}
		}
	}
	re := regexp.MustCompile(`^` + p.Container + `/(reg/segments/[0-9a-f]{3}/[0-9a-f]{37})$`)
	m := re.FindStringSubmatch(manifest)
	if m == nil {
		t.Fatalf("X-Object-Manifest of reg/files%s = %q, want %s/reg/segments/xxx/<37 hex>; objects: %+v", upload, manifest, p.Container, objs)
	}
	segPrefix := m[1]
	names, sizes := segmentsOf(t, s, p.Container, "reg/segments/")
	wantNames := []string{segPrefix + "/0000000000000001", segPrefix + "/0000000000000002", segPrefix + "/0000000000000003", segPrefix + "/0000000000000004"}
	if !slices.Equal(names, wantNames) || !slices.Equal(sizes, []int64{mib, mib, mib, mib / 2}) {
		t.Fatalf("segments = %q %v, want %q of 1, 1, 1 and 0.5 MiB", names, sizes, wantNames)
	}
	if len(objs) != 5 {
		t.Fatalf("objects = %+v, want the manifest and 4 segments", objs)
	}

	// Plain objects: PutContent, and a Writer session within one chunk.
	link := repo + "/_layers/sha256/ab12/link"
	storagetest.MustPut(t, d, link, []byte("sha256:ab12"))
	small := repo + "/_uploads/5e1d/data"
	writeSession(t, d, small, false, []byte("small"), true)
	for _, o := range rawObjects(t, s, p.Container) {
		if (o.name == "reg/files"+link || o.name == "reg/files"+small) && o.manifest != "" {
			t.Errorf("%s is a manifest, want a plain object", o.name)
		}
	}

	// Move copies the manifest and keeps the segments.
	if err := d.Move(ctx, upload, blob); err != nil {
		t.Fatalf("Move: %v", err)
	}
	var moved string
	for _, o := range rawObjects(t, s, p.Container) {
		switch o.name {
		case "reg/files" + blob:
			moved = o.manifest
		case "reg/files" + upload:
			t.Errorf("source still there after Move")
		}
	}
	if moved != manifest {
		t.Fatalf("moved manifest = %q, want %q", moved, manifest)
	}
	if names2, _ := segmentsOf(t, s, p.Container, "reg/segments/"); !slices.Equal(names2, names) {
		t.Fatalf("segments changed by Move: %q", names2)
	}
	if got := storagetest.MustGet(t, d, blob); !bytes.Equal(got, content) {
		t.Fatalf("moved content differs")
	}
	if got, err := d.List(ctx, "/"); err != nil || !slices.Equal(got, []string{"/docker"}) {
		t.Fatalf("List(/) = %q, %v: segments must not show", got, err)
	}

	// Deleting the blob's directory takes its segments.
	if err := d.Delete(ctx, "/docker/registry/v2/blobs"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if names, _ := segmentsOf(t, s, p.Container, "reg/segments/"); len(names) != 0 {
		t.Fatalf("segments left after Delete: %q", names)
	}
	var left []string
	for _, o := range rawObjects(t, s, p.Container) {
		left = append(left, o.name)
	}
	if want := []string{"reg/files" + link, "reg/files" + small}; !slices.Equal(left, want) {
		t.Fatalf("objects after Delete = %q, want %q", left, want)
	}
}

// registry2SegmentPrefix makes a segments prefix the way registry:2 does:
// it hex-encodes the path, 32 random bytes and the SHA-1 of nothing.
func registry2SegmentPrefix(prefix, path string) string {
	random := storagetest.RandomBytes(99, 32)
	h := hex.EncodeToString(sha1.New().Sum(append([]byte(path), random...)))
	return strings.TrimLeft(prefix+"/segments/"+h[:3]+"/"+h[3:], "/")
}

// TestRegistry2LargeObject serves, continues, moves and deletes a large
// object laid out exactly as registry:2 leaves one when it continued a
// plain object: that object moved to segment 0, then segments from 2.
func TestRegistry2LargeObject(t *testing.T) {
	d, s, p := newTestDriver(t, "/r2")
	ctx := context.Background()
	c := s.conn()
	const upload = "/docker/registry/v2/repositories/x/_uploads/u/data"
	segPrefix := registry2SegmentPrefix("/r2", upload)
	parts := [][]byte{storagetest.RandomBytes(2, 700<<10), storagetest.RandomBytes(3, mib), storagetest.RandomBytes(4, 300<<10)}
	for i, n := range []int{0, 2, 3} {
		if err := c.ObjectPutBytes(ctx, p.Container, segmentName(segPrefix, n), parts[i], contentType); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ObjectPut(ctx, p.Container, "r2/files"+upload, bytes.NewReader(nil), false, "", contentType,
		swift.Headers{"X-Object-Manifest": p.Container + "/" + segPrefix}); err != nil {
		t.Fatal(err)
	}
	want := bytes.Join(parts, nil)

	if info, err := d.Stat(ctx, upload); err != nil || info.Size != int64(len(want)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(want))
	}
	if got := storagetest.MustGet(t, d, upload); !bytes.Equal(got, want) {
		t.Fatalf("content differs")
	}
	r, err := d.Reader(ctx, upload, 900<<10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, want[900<<10:]) {
		t.Fatalf("Reader(900 KiB) = %d bytes, %v", len(got), err)
	}

	more := storagetest.RandomBytes(5, mib+mib/2)
	w, err := d.Writer(ctx, upload, true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(want)) {
		t.Fatalf("resumed Size = %d, want %d", w.Size(), len(want))
	}
	w.Write(more)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)
	if got := storagetest.MustGet(t, d, upload); !bytes.Equal(got, want) {
		t.Fatalf("content after continuing differs")
	}
	names, _ := segmentsOf(t, s, p.Container, segPrefix)
	var wantNames []string
	for _, n := range []int{0, 2, 3, 4, 5} {
		wantNames = append(wantNames, segmentName(segPrefix, n))
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("segments = %q, want %q", names, wantNames)
	}

	const blob = "/docker/registry/v2/blobs/sha256/cd/cdef/data"
	if err := d.Move(ctx, upload, blob); err != nil {
		t.Fatal(err)
	}
	if got := storagetest.MustGet(t, d, blob); !bytes.Equal(got, want) {
		t.Fatalf("moved content differs")
	}
	if err := d.Delete(ctx, "/docker/registry/v2/repositories/x/_uploads"); err == nil {
		t.Fatalf("Delete of the emptied uploads directory succeeded")
	}
	if err := d.Delete(ctx, "/docker"); err != nil {
		t.Fatal(err)
	}
	if objs := rawObjects(t, s, p.Container); len(objs) != 0 {
		t.Fatalf("left after Delete: %+v", objs)
	}
}

// TestResumeAcrossInstances continues one object from two drivers (two
// berth processes on one container), with sessions below, at and above the
// chunk size, and checks that the path Stats with the stored size after
// every Close (the content layer reads an upload's size that way).
func TestResumeAcrossInstances(t *testing.T) {
	cases := []struct {
		name     string
		sessions []int
	}{
		{"small chunks", []int{1000, 300 << 10, 1, 0, 200 << 10}},
		{"crossing a segment", []int{900 << 10, 300 << 10, 100}},
		{"exactly a segment", []int{mib, mib, 0, mib}},
		{"large chunks", []int{3*mib + 5, 2 * mib, mib / 2}},
		{"small after large", []int{2*mib + 1, 10, 20, mib}},
		{"empty first", []int{0, 3 * mib}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d1, s, p := newTestDriver(t, "/root")
			d2, err := New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			storagetest.ResumeAcrossInstances(t, d1, d2, tc.sessions, 256<<10, uint64(i))
			ctx := context.Background()
			assertNoOrphanSegments(t, s, p.Container, "root/segments/")
			if err := d1.Delete(ctx, "/docker"); err != nil {
				t.Fatal(err)
			}
			if objs := rawObjects(t, s, p.Container); len(objs) != 0 {
				t.Fatalf("left after Delete: %+v", objs)
			}
		})
	}
}

// TestLargeObjectRoundTrip streams 64 MiB (8 MiB with -short) in three
// sessions over two drivers, with 4 MiB segments, and checks it by sha256
// read whole and from an offset, after a Move, never holding it in memory.
func TestLargeObjectRoundTrip(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	chunk := func(p *Params) { p.ChunkSize = 4 << 20 }
	d1, s, p := newTestDriver(t, "/big", chunk)
	chunk(&p)
	d2, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const upload = "/docker/registry/v2/repositories/r/_uploads/big/data"
	source := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{42}), size) }
	src := source()
	wantSum := sha256.New()
	buf := make([]byte, mib)
	for i, n := range []int64{size/3 + 3, size / 3, size - size/3 - 3 - size/3} {
		w, err := []*Driver{d1, d2, d1}[i].Writer(ctx, upload, i > 0)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if _, err := io.CopyBuffer(struct{ io.Writer }{w}, io.TeeReader(io.LimitReader(src, n), wantSum), buf); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if i == 2 {
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatalf("session %d: Close: %v", i, err)
		}
	}
	const blob = "/docker/registry/v2/blobs/sha256/42/4242/data"
	if err := d2.Move(ctx, upload, blob); err != nil {
		t.Fatal(err)
	}
	if info, err := d1.Stat(ctx, blob); err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
	sumFrom := func(d storage.Driver, off int64) []byte {
		r, err := d.Reader(ctx, blob, off)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		h := sha256.New()
		if n, err := io.CopyBuffer(h, r, buf); err != nil || n != size-off {
			t.Fatalf("read %d bytes from %d, %v; want %d", n, off, err, size-off)
		}
		return h.Sum(nil)
	}
	if got := sumFrom(d1, 0); !bytes.Equal(got, wantSum.Sum(nil)) {
		t.Fatalf("sha256 = %x, want %x", got, wantSum.Sum(nil))
	}
	off := size/2 + 12345
	s2 := source()
	io.CopyN(io.Discard, s2, off)
	tail := sha256.New()
	io.CopyBuffer(tail, s2, buf)
	if got := sumFrom(d2, off); !bytes.Equal(got, tail.Sum(nil)) {
		t.Fatalf("sha256 from %d = %x, want %x", off, got, tail.Sum(nil))
	}
	// Three sessions: full segments, and each session's short last one.
	if names, _ := segmentsOf(t, s, p.Container, "big/segments/"); len(names) > int(size/(4<<20))+3 {
		t.Fatalf("%d segments for %d bytes", len(names), size)
	}
	if err := d1.Delete(ctx, "/docker/registry/v2/blobs/sha256/42"); err != nil {
		t.Fatal(err)
	}
	if names, _ := segmentsOf(t, s, p.Container, "big/segments/"); len(names) != 0 {
		t.Fatalf("segments left: %d", len(names))
	}
}

// TestReplacingLargeObjects checks that whatever replaces a large object
// (PutContent, a new Writer, Move) deletes its segments, and that a
// cancelled session leaves none.
func TestReplacingLargeObjects(t *testing.T) {
	d, s, p := newTestDriver(t, "")
	ctx := context.Background()
	big := func(seed uint64) []byte { return storagetest.RandomBytes(seed, 2*mib+mib/2) }
	segments := func() []string { n, _ := segmentsOf(t, s, p.Container, "segments/"); return n }

	writeSession(t, d, "/o", false, big(1), true)
	if len(segments()) != 3 {
		t.Fatalf("segments = %q", segments())
	}
	storagetest.MustPut(t, d, "/o", []byte("small"))
	if got := segments(); len(got) != 0 {
		t.Fatalf("PutContent over a large object left %q", got)
	}

	writeSession(t, d, "/o", false, big(2), true)
	first := segments()
	b3 := big(3)
	writeSession(t, d, "/o", false, b3, true)
	if got := segments(); len(got) != 3 || slices.Contains(got, first[0]) {
		t.Fatalf("a new Writer over a large object: segments %q (first object's: %q)", got, first)
	}
	if got := storagetest.MustGet(t, d, "/o"); !bytes.Equal(got, b3) {
		t.Fatal("content differs")
	}

	b4 := big(4)
	writeSession(t, d, "/src", false, b4, true)
	if err := d.Move(ctx, "/src", "/o"); err != nil {
		t.Fatal(err)
	}
	if got := segments(); len(got) != 3 {
		t.Fatalf("Move over a large object: segments %q", got)
	}
	if got := storagetest.MustGet(t, d, "/o"); !bytes.Equal(got, b4) {
		t.Fatal("content differs")
	}
	assertNoOrphanSegments(t, s, p.Container, "segments/")

	// Cancel, of a fresh and of a continued session.
	for _, resume := range []bool{false, true} {
		w, err := d.Writer(ctx, "/o", resume)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(big(5))
		if err := w.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		if got := segments(); len(got) != 0 {
			t.Fatalf("Cancel (resume=%v) left %q", resume, got)
		}
		writeSession(t, d, "/o", false, big(6), true)
	}
}

// TestTempURL fetches objects through URLFor's temp URLs, with the
// configured key set on the container, and checks a second driver without
// a key reuses it, as registry:2 does.
func TestTempURL(t *testing.T) {
	const key = "berth-temp-url-key"
	d, s, p := newTestDriver(t, "/t", func(p *Params) { p.SecretKey = key })
	ctx := context.Background()
	small := []byte("a small blob")
	large := storagetest.RandomBytes(7, 2*mib+10)
	storagetest.MustPut(t, d, "/small", small)
	writeSession(t, d, "/large", false, large, true)

	_, h, err := s.conn().Container(ctx, p.Container)
	if err != nil || h["X-Container-Meta-Temp-Url-Key"] != key {
		t.Fatalf("container temp URL key = %q, %v", h["X-Container-Meta-Temp-Url-Key"], err)
	}
	p.SecretKey = ""
	d2, err := New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, dr := range []*Driver{d, d2} {
		for path, want := range map[string][]byte{"/small": small, "/large": large} {
			u, err := dr.URLFor(ctx, path, time.Minute)
			if err != nil {
				t.Fatalf("URLFor(%s): %v", path, err)
			}
			if !strings.Contains(u, "/v1/AUTH_test/"+p.Container+"/t/files"+path+"?") {
				t.Errorf("URL %s does not name the object", u)
			}
			if sig := regexp.MustCompile(`temp_url_sig=([0-9a-f]+)`).FindStringSubmatch(u); sig == nil || len(sig[1]) != 64 {
				t.Errorf("URL %s: want a hex HMAC-SHA256 signature", u)
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
				t.Fatalf("GET %s = %s, %d bytes; want 200, %d bytes", u, resp.Status, len(got), len(want))
			}
			head, err := dr.URLForMethod(ctx, http.MethodHead, path, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			resp, err = http.Head(head)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
				t.Fatalf("HEAD %s = %s, length %d", head, resp.Status, resp.ContentLength)
			}
			bad := regexp.MustCompile(`temp_url_sig=[0-9a-f]`).ReplaceAllString(u, "temp_url_sig=0")
			if bad == u {
				bad = strings.Replace(u, "temp_url_sig=0", "temp_url_sig=1", 1)
			}
			resp, err = http.Get(bad)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET with a wrong signature = %s, want 401", resp.Status)
			}
		}
	}
	if _, err := d.URLForMethod(ctx, http.MethodPut, "/small", time.Minute); err == nil {
		t.Fatal("URLForMethod(PUT) succeeded")
	}

	// No key configured or set: registry:2 sets a random one.
	d3, _, _ := newTestDriver(t, "/t")
	storagetest.MustPut(t, d3, "/x", small)
	u, err := d3.URLFor(ctx, "/x", time.Minute)
	if err != nil {
		t.Fatalf("URLFor without a configured key: %v", err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s", u, resp.Status)
	}
}

// TestLargeObjectReader reads a large object of uneven segments (three
// sessions) from offsets on and around every segment boundary, an empty
// large object as registry:2 leaves one when an upload starts, and a
// Static Large Object another tool wrote.
func TestLargeObjectReader(t *testing.T) {
	d, s, p := newTestDriver(t, "")
	ctx := context.Background()
	var want []byte
	for i, n := range []int{mib + mib/2, 300 << 10, mib + 700<<10} {
		b := storagetest.RandomBytes(uint64(30+i), n)
		writeSession(t, d, "/dlo", i > 0, b, false)
		want = append(want, b...)
	}
	_, sizes := segmentsOf(t, s, p.Container, "segments/")
	if len(sizes) != 5 {
		t.Fatalf("segment sizes %v, want 5 segments", sizes)
	}
	offsets := []int64{0, 1, int64(len(want)) - 1, int64(len(want)), int64(len(want)) + 1, 1 << 40}
	var boundary int64
	for _, n := range sizes {
		boundary += n
		offsets = append(offsets, boundary-1, boundary, boundary+1)
	}
	for _, off := range offsets {
		r, err := d.Reader(ctx, "/dlo", off)
		if err != nil {
			t.Fatalf("Reader(%d): %v", off, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if w := want[min(off, int64(len(want))):]; err != nil || !bytes.Equal(got, w) {
			t.Fatalf("Reader(%d) = %d bytes, %v; want %d", off, len(got), err, len(w))
		}
	}
	if got := storagetest.MustGet(t, d, "/dlo"); !bytes.Equal(got, want) {
		t.Fatal("GetContent differs")
	}
	// Closing a reader in the middle of a segment.
	r, err := d.Reader(ctx, "/dlo", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, mib)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// registry:2 starts an upload with an empty large object.
	c := s.conn()
	emptyPrefix := registry2SegmentPrefix("", "/empty")
	if _, err := c.ObjectPut(ctx, p.Container, "files/empty", bytes.NewReader(nil), false, "", contentType,
		swift.Headers{"X-Object-Manifest": p.Container + "/" + emptyPrefix}); err != nil {
		t.Fatal(err)
	}
	if info, err := d.Stat(ctx, "/empty"); err != nil || info.Size != 0 || info.IsDir {
		t.Fatalf("Stat(empty large object) = %+v, %v", info, err)
	}
	for _, off := range []int64{0, 1} {
		r, err := d.Reader(ctx, "/empty", off)
		if err != nil {
			t.Fatalf("Reader(empty, %d): %v", off, err)
		}
		if got, err := io.ReadAll(r); err != nil || len(got) != 0 {
			t.Fatalf("Reader(empty, %d) = %q, %v", off, got, err)
		}
		r.Close()
	}
	writeSession(t, d, "/empty", true, []byte("now"), true)
	if got := storagetest.MustGet(t, d, "/empty"); string(got) != "now" {
		t.Fatalf("continued empty large object = %q", got)
	}
	if names, _ := segmentsOf(t, s, p.Container, emptyPrefix); len(names) != 1 || !strings.HasSuffix(names[0], "/0000000000000001") {
		t.Fatalf("segments of the continued empty object: %q", names)
	}

	// A Static Large Object, read through Swift's middleware.
	seg1, seg2 := storagetest.RandomBytes(40, mib), storagetest.RandomBytes(41, 1000)
	for name, b := range map[string][]byte{"slo-segs/1": seg1, "slo-segs/2": seg2} {
		if err := c.ObjectPutBytes(ctx, p.Container, name, b, contentType); err != nil {
			t.Fatal(err)
		}
	}
	sloManifest := fmt.Sprintf(`[{"path":"/%[1]s/slo-segs/1"},{"path":"/%[1]s/slo-segs/2"}]`, p.Container)
	storageURL, err := c.GetStorageUrl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Call(ctx, storageURL, swift.RequestOpts{
		Container: p.Container, ObjectName: "files/slo", Operation: http.MethodPut,
		Parameters: map[string][]string{"multipart-manifest": {"put"}},
		Body:       strings.NewReader(sloManifest), NoResponse: true,
	})
	if err != nil {
		t.Fatalf("put SLO manifest: %v", err)
	}
	wantSLO := append(slices.Clone(seg1), seg2...)
	if got := storagetest.MustGet(t, d, "/slo"); !bytes.Equal(got, wantSLO) {
		t.Fatalf("SLO = %d bytes, want %d", len(got), len(wantSLO))
	}
	for _, off := range []int64{mib - 1, mib + 999, mib + 1000, mib + 5000} {
		r, err := d.Reader(ctx, "/slo", off)
		if err != nil {
			t.Fatalf("Reader(slo, %d): %v", off, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if w := wantSLO[min(off, int64(len(wantSLO))):]; err != nil || !bytes.Equal(got, w) {
			t.Fatalf("Reader(slo, %d) = %d bytes, %v; want %d", off, len(got), err, len(w))
		}
	}
}

// TestContinuePlainObject continues plain objects: one that fits in a
// segment (read into the first one) and one larger than a segment
// (copied server-side into the first one), e.g. written with a larger
// chunksize or by PutContent.
func TestContinuePlainObject(t *testing.T) {
	d, s, p := newTestDriver(t, "")
	for i, n := range []int{mib / 2, mib, 2*mib + 5} {
		path := fmt.Sprintf("/plain%d", i)
		base := storagetest.RandomBytes(uint64(50+i), n)
		storagetest.MustPut(t, d, path, base)
		more := storagetest.RandomBytes(uint64(60+i), mib+mib/3)
		writeSession(t, d, path, true, more, true)
		if got, want := storagetest.MustGet(t, d, path), append(base, more...); !bytes.Equal(got, want) {
			t.Fatalf("%s: continued plain object of %d bytes differs", path, n)
		}
		if info, err := d.Stat(context.Background(), path); err != nil || info.Size != int64(n+len(more)) {
			t.Fatalf("%s: Stat = %+v, %v", path, info, err)
		}
	}
	assertNoOrphanSegments(t, s, p.Container, "segments/")
}
