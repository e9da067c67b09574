package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/storage"
)

// ContentFlow is one blob RunContentFlows pushes: its bytes arrive in
// chunks of these sizes, or, if Monolithic, in one PUT of their total.
type ContentFlow struct {
	Name       string
	Chunks     []int
	Monolithic bool
}

// RunContentFlows pushes blobs through the content layer on two berth
// instances, over d1 and d2 (two drivers sharing one backend), the way
// clients do: a chunked upload's chunks alternate between the instances,
// each checked from the other one, and the other instance finishes it; a
// monolithic flow is one PutBlob. The content layer learns an upload's size
// from Stat and continues its digest from the saved hash state, so this
// checks a driver where the registry meets it.
//
// Each blob must then be readable whole through the second instance, and
// stored at registry:2's path; no upload may be left behind at the end.
func RunContentFlows(t *testing.T, d1, d2 storage.Driver, flows []ContentFlow) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	regs := []*content.Registry{
		content.New(d1, nil, content.Options{Logger: quiet}),
		content.New(d2, nil, content.Options{Logger: quiet}),
	}
	ctx := context.Background()
	for i, tc := range flows {
		t.Run(tc.Name, func(t *testing.T) {
			const repo = "library/app"
			var blob []byte
			for j, n := range tc.Chunks {
				blob = append(blob, RandomBytes(uint64(1000+i*10+j), n)...)
			}
			dg := digest.FromBytes(blob)
			if tc.Monolithic {
				if _, err := regs[0].PutBlob(ctx, repo, dg, bytes.NewReader(blob)); err != nil {
					t.Fatalf("PutBlob: %v", err)
				}
			} else {
				u, err := regs[0].StartUpload(ctx, repo)
				if err != nil {
					t.Fatal(err)
				}
				off := 0
				for j, n := range tc.Chunks {
					reg := regs[j%2]
					got, err := reg.AppendUpload(ctx, repo, u.ID, int64(off), bytes.NewReader(blob[off:off+n]))
					if err != nil {
						t.Fatalf("chunk %d: %v", j, err)
					}
					off += n
					if got.Size != int64(off) {
						t.Fatalf("chunk %d: upload size %d, want %d", j, got.Size, off)
					}
					st, err := regs[(j+1)%2].UploadStatus(ctx, repo, u.ID)
					if err != nil || st.Size != int64(off) {
						t.Fatalf("chunk %d: status from the other instance = %+v, %v; want size %d", j, st, err, off)
					}
				}
				if _, err := regs[len(tc.Chunks)%2].FinishUpload(ctx, repo, u.ID, int64(off), nil, dg); err != nil {
					t.Fatalf("FinishUpload: %v", err)
				}
			}
			info, err := regs[1].Blob(ctx, repo, dg)
			if err != nil || info.Size != int64(len(blob)) {
				t.Fatalf("Blob = %+v, %v", info, err)
			}
			rc, err := regs[1].ReadBlob(ctx, dg, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, blob) {
				t.Fatalf("ReadBlob = %d bytes, %v; want %d", len(got), err, len(blob))
			}
			if _, err := d1.Stat(ctx, fmt.Sprintf("/docker/registry/v2/blobs/sha256/%s/%s/data", dg.Encoded()[:2], dg.Encoded())); err != nil {
				t.Fatalf("blob not at registry:2's path: %v", err)
			}
		})
	}
	if uploads, err := d1.List(ctx, "/docker/registry/v2/repositories/library/app/_uploads"); err == nil && len(uploads) > 0 {
		t.Errorf("uploads left behind: %q", uploads)
	}
}

// RunContentPurge leaves uploads behind in d the ways clients and crashes
// do (chunked ones of several buffers or parts, one of them resumed after a
// suspension; a monolithic leftover without a start marker) beside a
// finished blob, and purges them through the content layer with a cutoff
// in the future: every upload must be gone, the blob intact. The caller
// then checks that the backend kept nothing of them either.
func RunContentPurge(t *testing.T, d storage.Driver) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := content.New(d, nil, content.Options{Logger: quiet})
	ctx := context.Background()
	const repo, mib = "team/nested/app", 1 << 20

	blob := RandomBytes(2000, 7*mib)
	dg := digest.FromBytes(blob)
	if _, err := reg.PutBlob(ctx, repo, dg, bytes.NewReader(blob)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	var bytesLeft int64
	for i, chunks := range [][]int{{6*mib + 1}, {3 * mib, 6 * mib}, {100}} {
		u, err := reg.StartUpload(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		for j, n := range chunks {
			if _, err := reg.AppendUpload(ctx, repo, u.ID, int64(off), bytes.NewReader(RandomBytes(uint64(2010+i*10+j), n))); err != nil {
				t.Fatalf("upload %d chunk %d: %v", i, j, err)
			}
			off += n
		}
		bytesLeft += int64(off)
	}
	leftover := "/docker/registry/v2/repositories/" + repo + "/_uploads/" + "0b4d1c51-c1a3-4d6e-9bb8-ad1e6e6c2a4b" + "/data"
	w, err := d.Writer(ctx, leftover, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(RandomBytes(2050, 6*mib))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	bytesLeft += 6 * mib

	res, err := reg.PurgeUploads(ctx, time.Now().Add(time.Hour), false)
	if err != nil || res.Found != 4 || res.Purged != 4 || res.Errors != 0 || res.Bytes != bytesLeft {
		t.Fatalf("PurgeUploads = %+v, %v; want 4 found and purged, %d bytes", res, err, bytesLeft)
	}
	if uploads, err := d.List(ctx, "/docker/registry/v2/repositories/"+repo+"/_uploads"); err == nil && len(uploads) > 0 {
		t.Errorf("uploads left behind: %q", uploads)
	}
	rc, err := reg.ReadBlob(ctx, dg, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("blob after the purge: %d bytes, %v; want %d", len(got), err, len(blob))
	}
}
