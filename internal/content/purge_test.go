package content_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

var purgeDrivers = []struct {
	name string
	new  func(t *testing.T) storage.Driver
}{
	{"inmemory", func(*testing.T) storage.Driver { return inmemory.New() }},
	{"filesystem", func(t *testing.T) storage.Driver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}},
}

func newPurgeRegistry(t *testing.T, d storage.Driver, opts content.Options) *content.Registry {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return content.New(d, idx, opts)
}

func uploadDirOf(repo, id string) string { return v2 + "/repositories/" + repo + "/_uploads/" + id }

// pushImage pushes a config, a layer and a manifest tagged "v1".
func pushImage(t *testing.T, reg *content.Registry, repo string) (layer []byte, manifest digest.Digest) {
	t.Helper()
	ctx := context.Background()
	cfg, layer := []byte(`{"repo":"`+repo+`"}`), []byte("layer of "+repo)
	for _, b := range [][]byte{cfg, layer} {
		if _, err := reg.PutBlob(ctx, repo, digest.FromBytes(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		content.MediaTypeOCIManifest, digest.FromBytes(cfg), len(cfg), digest.FromBytes(layer), len(layer))
	m, err := reg.PutManifest(ctx, repo, "v1", content.MediaTypeOCIManifest, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return layer, m.Digest
}

// assertPullable checks that the image pushImage pushed is intact.
func assertPullable(t *testing.T, reg *content.Registry, repo string, layer []byte, manifest digest.Digest) {
	t.Helper()
	ctx := context.Background()
	m, err := reg.GetManifest(ctx, repo, "v1")
	if err != nil || m.Digest != manifest {
		t.Fatalf("GetManifest(%s:v1) = %v, %v; want %s", repo, m.Digest, err, manifest)
	}
	if _, err := reg.Blob(ctx, repo, digest.FromBytes(layer)); err != nil {
		t.Fatalf("Blob(%s) = %v", repo, err)
	}
	rc, err := reg.ReadBlob(ctx, digest.FromBytes(layer), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("ReadBlob = %q, %v; want %q", got, err, layer)
	}
}

func startUpload(t *testing.T, reg *content.Registry, repo string, chunk []byte) string {
	t.Helper()
	ctx := context.Background()
	u, err := reg.StartUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if chunk != nil {
		if _, err := reg.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	return u.ID
}

func assertGone(t *testing.T, d storage.Driver, repo, id string) {
	t.Helper()
	if _, err := d.Stat(context.Background(), uploadDirOf(repo, id)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("upload %s/%s after the purge: Stat = %v, want ErrNotFound", repo, id, err)
	}
}

func assertKept(t *testing.T, reg *content.Registry, repo, id string, size int64) {
	t.Helper()
	u, err := reg.UploadStatus(context.Background(), repo, id)
	if err != nil || u.Size != size {
		t.Errorf("upload %s/%s after the purge: %+v, %v; want it kept with %d bytes", repo, id, u, err, size)
	}
}

func purge(t *testing.T, reg *content.Registry, olderThan time.Time, dryRun bool) content.PurgeResult {
	t.Helper()
	res, err := reg.PurgeUploads(context.Background(), olderThan, dryRun)
	if err != nil {
		t.Fatalf("PurgeUploads: %v", err)
	}
	return res
}

func TestPurgeUploads(t *testing.T) {
	ctx := context.Background()
	for _, drv := range purgeDrivers {
		t.Run(drv.name, func(t *testing.T) {
			// An upload whose start marker is older than the age is purged,
			// a younger one kept, in nested repositories and in one that
			// holds nothing but uploads; the images beside them stay whole.
			t.Run("by start marker", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				layer, manifest := pushImage(t, reg, "a/b/c")
				old := startUpload(t, reg, "a/b/c", []byte("0123456789"))
				stamp := time.Now().Add(-8 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
				if err := d.PutContent(ctx, uploadDirOf("a/b/c", old)+"/startedat", []byte(stamp)); err != nil {
					t.Fatal(err)
				}
				young := startUpload(t, reg, "team/app", []byte("abc"))

				res := purge(t, reg, time.Now().Add(-7*24*time.Hour), false)
				if res.Found != 2 || res.Purged != 1 || res.Bytes != 10 || res.Errors != 0 || res.Busy != 0 {
					t.Errorf("result = %+v; want 2 found, 1 purged (10 bytes)", res)
				}
				assertGone(t, d, "a/b/c", old)
				assertKept(t, reg, "team/app", young, 3)
				assertPullable(t, reg, "a/b/c", layer, manifest)
			})

			// An upload a client is pushing (started, one PATCH) that is
			// older than the cutoff is purged; its next PATCH or PUT is
			// told the upload is unknown, and the client starts over.
			t.Run("in progress", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				layer, manifest := pushImage(t, reg, "x/y")
				data := []byte("0123456789abcdefghij")
				id := startUpload(t, reg, "x/y", data[:10])

				res := purge(t, reg, time.Now().Add(time.Hour), false)
				if res.Found != 1 || res.Purged != 1 || res.Bytes != 10 {
					t.Errorf("result = %+v; want 1 found, 1 purged (10 bytes)", res)
				}
				assertGone(t, d, "x/y", id)
				if _, err := reg.AppendUpload(ctx, "x/y", id, 10, bytes.NewReader(data[10:])); !errors.Is(err, content.ErrBlobUploadUnknown) {
					t.Errorf("PATCH after the purge: %v, want BLOB_UPLOAD_UNKNOWN", err)
				}
				if _, err := reg.FinishUpload(ctx, "x/y", id, 10, bytes.NewReader(data[10:]), digest.FromBytes(data)); !errors.Is(err, content.ErrBlobUploadUnknown) {
					t.Errorf("PUT after the purge: %v, want BLOB_UPLOAD_UNKNOWN", err)
				}
				assertGone(t, d, "x/y", id)
				// Purging every upload leaves the repository's images alone.
				assertPullable(t, reg, "x/y", layer, manifest)
				if _, err := reg.Blob(ctx, "x/y", digest.FromBytes(data)); !errors.Is(err, content.ErrBlobUnknown) {
					t.Errorf("Blob of the purged upload's digest: %v, want BLOB_UNKNOWN", err)
				}
			})

			// A monolithic upload (PutBlob) writes no start marker: what a
			// crashed one leaves is dated by its data.
			t.Run("monolithic leftover", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				id := uuid.NewString()
				if err := d.PutContent(ctx, uploadDirOf("lib/app", id)+"/data", []byte("half a blob")); err != nil {
					t.Fatal(err)
				}
				if res := purge(t, reg, time.Now().Add(-time.Hour), false); res.Found != 1 || res.Purged != 0 {
					t.Errorf("with data written just now, result = %+v; want 1 found, none purged", res)
				}
				assertKept(t, reg, "lib/app", id, 11)
				if res := purge(t, reg, time.Now().Add(time.Hour), false); res.Purged != 1 || res.Bytes != 11 {
					t.Errorf("with data older than the cutoff, result = %+v; want 1 purged (11 bytes)", res)
				}
				assertGone(t, d, "lib/app", id)
			})

			// With neither a readable start marker nor data, what is left is
			// dated by the newest of its files.
			t.Run("neither marker nor data", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				lost, corrupt := uuid.NewString(), uuid.NewString()
				if err := d.PutContent(ctx, uploadDirOf("lib/app", lost)+"/hashstates/sha256/2097152", []byte("state")); err != nil {
					t.Fatal(err)
				}
				if err := d.PutContent(ctx, uploadDirOf("lib/app", corrupt)+"/startedat", []byte("not a time")); err != nil {
					t.Fatal(err)
				}
				if res := purge(t, reg, time.Now().Add(-time.Hour), false); res.Found != 2 || res.Purged != 0 || res.Errors != 0 {
					t.Errorf("with files written just now, result = %+v; want 2 found, none purged", res)
				}
				for _, id := range []string{lost, corrupt} {
					if _, err := d.Stat(ctx, uploadDirOf("lib/app", id)); err != nil {
						t.Errorf("upload %s purged while young: %v", id, err)
					}
				}
				if res := purge(t, reg, time.Now().Add(time.Hour), false); res.Purged != 2 || res.Errors != 0 {
					t.Errorf("with files older than the cutoff, result = %+v; want 2 purged", res)
				}
				assertGone(t, d, "lib/app", lost)
				assertGone(t, d, "lib/app", corrupt)
			})

			t.Run("dry run", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				id := startUpload(t, reg, "lib/app", []byte("12345"))
				res := purge(t, reg, time.Now().Add(time.Hour), true)
				if res.Found != 1 || res.Purged != 1 || res.Bytes != 5 {
					t.Errorf("result = %+v; want 1 found, 1 that would be purged (5 bytes)", res)
				}
				assertKept(t, reg, "lib/app", id, 5)
			})

			t.Run("read-only", func(t *testing.T) {
				d := drv.new(t)
				id := startUpload(t, newPurgeRegistry(t, d, content.Options{}), "lib/app", []byte("12345"))
				ro := newPurgeRegistry(t, d, content.Options{ReadOnly: true})
				res, err := ro.PurgeUploads(ctx, time.Now().Add(time.Hour), false)
				var cerr *content.Error
				if !errors.As(err, &cerr) || cerr.Code != content.CodeUnsupported || res.Found != 0 {
					t.Errorf("PurgeUploads in read-only mode = %+v, %v; want UNSUPPORTED", res, err)
				}
				assertKept(t, ro, "lib/app", id, 5)
			})

			// A PATCH on this instance holds its upload: the purge skips it
			// rather than delete it under the request or wait for it.
			t.Run("in use", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				id := startUpload(t, reg, "lib/app", []byte("12345"))
				body := &gatedBody{reading: make(chan struct{}), release: make(chan struct{}), data: []byte("67890")}
				patched := make(chan error, 1)
				go func() {
					_, err := reg.AppendUpload(ctx, "lib/app", id, 5, body)
					patched <- err
				}()
				<-body.reading
				res := purge(t, reg, time.Now().Add(time.Hour), false)
				close(body.release)
				if err := <-patched; err != nil {
					t.Fatalf("PATCH during the purge: %v", err)
				}
				if res.Found != 1 || res.Busy != 1 || res.Purged != 0 {
					t.Errorf("result = %+v; want 1 found, busy, none purged", res)
				}
				assertKept(t, reg, "lib/app", id, 10)
				if res := purge(t, reg, time.Now().Add(time.Hour), false); res.Purged != 1 {
					t.Errorf("once the PATCH is done, result = %+v; want 1 purged", res)
				}
				assertGone(t, d, "lib/app", id)
			})

			t.Run("cancelled", func(t *testing.T) {
				d := drv.new(t)
				reg := newPurgeRegistry(t, d, content.Options{})
				id := startUpload(t, reg, "lib/app", nil)
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if _, err := reg.PurgeUploads(cctx, time.Now().Add(time.Hour), false); !errors.Is(err, context.Canceled) {
					t.Errorf("PurgeUploads with a cancelled context: %v, want context.Canceled", err)
				}
				assertKept(t, reg, "lib/app", id, 0)
			})

			t.Run("empty storage", func(t *testing.T) {
				reg := newPurgeRegistry(t, drv.new(t), content.Options{})
				if res := purge(t, reg, time.Now().Add(time.Hour), false); res != (content.PurgeResult{}) {
					t.Errorf("result = %+v; want nothing", res)
				}
			})
		})
	}
}

// gatedBody is a request body that says when it is first read, then
// waits for release before yielding its data.
type gatedBody struct {
	reading, release chan struct{}
	data             []byte
	started          bool
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		close(b.reading)
		<-b.release
	}
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}
