package swift

import (
	"context"
	"testing"

	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// TestContentUploads pushes blobs through the content layer on two berth
// instances sharing the container (see storagetest.RunContentFlows): one
// streamed PATCH and an empty PUT (docker, containerd), many chunks below
// and above the segment size alternating between the instances, and a
// monolithic PUT.
func TestContentUploads(t *testing.T) {
	d1, s, p := newTestDriver(t, "/registry")
	d2, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunContentFlows(t, d1, d2, []storagetest.ContentFlow{
		{Name: "one streamed chunk", Chunks: []int{5*mib + 17}},
		{Name: "chunks below the segment size", Chunks: []int{300 << 10, 700 << 10, 200<<10 + 1, 100, 900 << 10}},
		{Name: "chunks above the segment size", Chunks: []int{2 * mib, mib, 3*mib + 3, 1}},
		{Name: "monolithic", Chunks: []int{3 * mib}, Monolithic: true},
		{Name: "monolithic small", Chunks: []int{1234}, Monolithic: true},
		{Name: "empty blob", Chunks: []int{0}},
	})
	assertNoOrphanSegments(t, s, p.Container, "registry/segments/")
}

// TestContentPurge purges uploads left in the container (see
// storagetest.RunContentPurge): no object and no segment of theirs may
// remain.
func TestContentPurge(t *testing.T) {
	d, s, p := newTestDriver(t, "/registry")
	storagetest.RunContentPurge(t, d)
	assertNoOrphanSegments(t, s, p.Container, "registry/segments/")
}

// TestContentBackupRestore migrates a registry from the filesystem into
// the container with berth's backup and restore (see
// storagetest.RunBackupRestore): no segment may be left over.
func TestContentBackupRestore(t *testing.T) {
	d, s, p := newTestDriver(t, "/registry")
	src, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunBackupRestore(t, src, d)
	assertNoOrphanSegments(t, s, p.Container, "registry/segments/")
}
