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
