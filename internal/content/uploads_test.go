package content

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

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
