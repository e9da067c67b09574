package swift

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
)

// TestContentUploads pushes blobs through the content layer on two berth
// instances sharing the container, the way clients do: one streamed PATCH
// and an empty PUT (docker, containerd), many chunks below and above the
// segment size alternating between the instances, and a monolithic PUT.
// The content layer learns an upload's size from Stat and continues its
// digest from the saved hash state, so this checks the driver where the
// registry meets it.
func TestContentUploads(t *testing.T) {
	d1, s, p := newTestDriver(t, "/registry")
	d2, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	regs := []*content.Registry{
		content.New(d1, nil, content.Options{Logger: quiet}),
		content.New(d2, nil, content.Options{Logger: quiet}),
	}
	ctx := context.Background()
	for i, tc := range []struct {
		name       string
		chunks     []int
		monolithic bool
	}{
		{name: "one streamed chunk", chunks: []int{5*mib + 17}},
		{name: "chunks below the segment size", chunks: []int{300 << 10, 700 << 10, 200<<10 + 1, 100, 900 << 10}},
		{name: "chunks above the segment size", chunks: []int{2 * mib, mib, 3*mib + 3, 1}},
		{name: "monolithic", chunks: []int{3 * mib}, monolithic: true},
		{name: "monolithic small", chunks: []int{1234}, monolithic: true},
		{name: "empty blob", chunks: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const repo = "library/app"
			var blob []byte
			for j, n := range tc.chunks {
				blob = append(blob, randomBytes(uint64(1000+i*10+j), n)...)
			}
			dg := digest.FromBytes(blob)
			if tc.monolithic {
				if _, err := regs[0].PutBlob(ctx, repo, dg, bytes.NewReader(blob)); err != nil {
					t.Fatalf("PutBlob: %v", err)
				}
			} else {
				u, err := regs[0].StartUpload(ctx, repo)
				if err != nil {
					t.Fatal(err)
				}
				off := 0
				for j, n := range tc.chunks {
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
				if _, err := regs[len(tc.chunks)%2].FinishUpload(ctx, repo, u.ID, int64(off), nil, dg); err != nil {
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
			if _, err := d1.Stat(ctx, blobPath(dg.String())); err != nil {
				t.Fatalf("blob not at registry:2's path: %v", err)
			}
		})
	}
	if uploads, err := d1.List(ctx, "/docker/registry/v2/repositories/library/app/_uploads"); err == nil && len(uploads) > 0 {
		t.Errorf("uploads left behind: %q", uploads)
	}
	assertNoOrphanSegments(t, s, p.Container, "registry/segments/")
}
