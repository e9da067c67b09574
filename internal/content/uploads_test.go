package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// The start marker of an upload is not synced. An upload that lost it in a
// crash still exists as long as its acknowledged bytes do, and completes;
// one that lost it before any byte arrived is unknown (the client starts
// over, having been told nothing).
func TestUploadSurvivesLostStartMarker(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, nil, Options{})
	data := []byte("0123456789abcdefghij")

	u, err := r.StartUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AppendUpload(ctx, "team/app", u.ID, 0, bytes.NewReader(data[:10])); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, uploadStartedAtPath("team/app", u.ID)); err != nil {
		t.Fatal(err)
	}
	got, err := r.UploadStatus(ctx, "team/app", u.ID)
	if err != nil || got.Size != 10 {
		t.Fatalf("status after losing the marker: %+v, %v; want 10 bytes", got, err)
	}
	info, err := r.FinishUpload(ctx, "team/app", u.ID, 10, bytes.NewReader(data[10:]), digest.FromBytes(data))
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("finish: %+v, %v", info, err)
	}

	empty, err := r.StartUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, uploadStartedAtPath("team/app", empty.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UploadStatus(ctx, "team/app", empty.ID); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("status of an upload with neither marker nor data: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
}

// Up to rehashLimit an upload keeps no hash state (the next chunk rehashes
// the stored bytes); beyond it, each chunk leaves the state for its end, so
// the next chunk, on any instance, continues without re-reading. Whatever
// the chunking, the digest is verified over exactly the stored bytes.
func TestUploadHashStateAcrossChunks(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, nil, Options{})
	const repo = "team/app"
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*rehashLimit)/16+5)
	chunks := []int{10, 1000, rehashLimit - 1010, 1, rehashLimit, len(data) - 2*rehashLimit - 1}

	u, err := r.StartUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i, n := range chunks {
		if _, err := r.AppendUpload(ctx, repo, u.ID, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		off += n
		_, err := d.Stat(ctx, hashStatePath(repo, u.ID, int64(off)))
		if saved := err == nil; saved != (off > rehashLimit) {
			t.Fatalf("after %d bytes: hash state saved = %v, want %v", off, saved, off > rehashLimit)
		}
	}
	if off != len(data) {
		t.Fatalf("chunks cover %d of %d bytes", off, len(data))
	}
	if _, err := r.FinishUpload(ctx, repo, u.ID, int64(off), nil, digest.FromBytes(data[1:])); !errors.Is(err, ErrDigestInvalid) {
		t.Fatalf("finish with a wrong digest: %v, want DIGEST_INVALID", err)
	}

	// The same bytes again, verified right this time.
	u, err = r.StartUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	off = 0
	for _, n := range chunks[:len(chunks)-1] {
		if _, err := r.AppendUpload(ctx, repo, u.ID, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	info, err := r.FinishUpload(ctx, repo, u.ID, int64(off), bytes.NewReader(data[off:]), digest.FromBytes(data))
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("finish: %+v, %v", info, err)
	}
}

// A chunk whose body breaks off keeps every byte that arrived, hashed, and
// says so with BLOB_UPLOAD_INVALID; the client resumes from the reported
// size and the finished blob verifies. The filesystem case is large enough
// to be read straight into the direct-I/O stage.
func TestUploadChunkCutMidway(t *testing.T) {
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		driver storage.Driver
	}{
		{"inmemory", inmemory.New()},
		{"filesystem", fs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := New(tc.driver, nil, Options{})
			const repo = "team/app"
			data := randomBytes(3, 9<<20+321)
			cut := 5<<20 + 123

			u, err := r.StartUpload(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			body := io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(errors.New("connection reset")))
			got, err := r.AppendUpload(ctx, repo, u.ID, 0, body)
			var cerr *Error
			if !errors.As(err, &cerr) || cerr.Code != CodeBlobUploadInvalid {
				t.Fatalf("cut chunk: %v, want BLOB_UPLOAD_INVALID", err)
			}
			if got.Size != int64(cut) {
				t.Fatalf("cut chunk: upload holds %d bytes, want the %d that arrived", got.Size, cut)
			}
			if _, err := tc.driver.Stat(ctx, hashStatePath(repo, u.ID, int64(cut))); err != nil {
				t.Fatalf("no hash state for the bytes that arrived: %v", err)
			}
			info, err := r.FinishUpload(ctx, repo, u.ID, int64(cut), bytes.NewReader(data[cut:]), digest.FromBytes(data))
			if err != nil || info.Size != int64(len(data)) {
				t.Fatalf("finish after resuming: %+v, %v", info, err)
			}
			assertBlob(t, tc.driver, digest.FromBytes(data), data)
		})
	}
}

// When storage fails partway through a chunk, more bytes were read (and
// hashed) than were kept. The hash state must then not be saved for the
// size storage reports, or the resumed upload would be verified against a
// hash of bytes it does not hold.
func TestUploadStorageFailureSavesNoHashState(t *testing.T) {
	ctx := context.Background()
	d := &failingDriver{Driver: inmemory.New(), keep: 3<<20 + 5}
	r := New(d, nil, Options{})
	const repo = "team/app"
	data := randomBytes(4, 6<<20)

	u, err := r.StartUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(data[:5<<20]))
	var cerr *Error
	if err == nil || (errors.As(err, &cerr) && cerr.Code == CodeBlobUploadInvalid) {
		t.Fatalf("chunk with a failing disk: %v, want a storage error", err)
	}
	if got.Size != d.keep {
		t.Fatalf("upload holds %d bytes, want the %d storage kept", got.Size, d.keep)
	}
	if _, err := d.Stat(ctx, hashStatePath(repo, u.ID, d.keep)); err == nil {
		t.Fatal("hash state saved after a failed write")
	}
	d.keep = -1 // the disk is back
	info, err := r.FinishUpload(ctx, repo, u.ID, got.Size, bytes.NewReader(data[got.Size:]), digest.FromBytes(data))
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("finish after resuming: %+v, %v", info, err)
	}
	assertBlob(t, d, digest.FromBytes(data), data)
}

func assertBlob(t *testing.T, d storage.Driver, dg digest.Digest, want []byte) {
	t.Helper()
	got, err := d.GetContent(context.Background(), blobDataPath(dg))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("blob %s holds %d bytes (%v), want %d", dg, len(got), err, len(want))
	}
}

// randomBytes returns n bytes that do not compress or repeat; the same for
// the same seed. (storagetest's helper imports this package.)
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// failingDriver's writers keep only the first keep bytes of an object and
// fail every write past them (keep < 0: no limit), like a disk filling up.
type failingDriver struct {
	storage.Driver
	keep int64
}

func (d *failingDriver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	w, err := d.Driver.Writer(ctx, p, resume)
	if err != nil {
		return nil, err
	}
	return &failingWriter{FileWriter: w, d: d}, nil
}

type failingWriter struct {
	storage.FileWriter
	d *failingDriver
}

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.d.keep < 0 {
		return w.FileWriter.Write(b)
	}
	room := max(w.d.keep-w.Size(), 0)
	n, err := w.FileWriter.Write(b[:min(int64(len(b)), room)])
	if err == nil && n < len(b) {
		err = errors.New("no space left on device")
	}
	return n, err
}
