package s3

import (
	"context"
	"testing"

	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// TestContentUploads pushes blobs through the content layer on two berth
// instances sharing the bucket (see storagetest.RunContentFlows): one
// streamed PATCH and an empty PUT (docker, containerd), many chunks below
// and above 5 MiB alternating between the instances, and a monolithic PUT.
func TestContentUploads(t *testing.T) {
	d1, s, bucket := newTestDriver(t, "/registry")
	d2, err := New(context.Background(), s.params(bucket, "/registry"))
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	storagetest.RunContentFlows(t, d1, d2, []storagetest.ContentFlow{
		{Name: "one streamed chunk", Chunks: []int{23*mib + 17}},
		{Name: "chunks below 5 MiB", Chunks: []int{mib, 3 * mib, 2*mib + 1, 100, 4 * mib}},
		{Name: "chunks above 5 MiB", Chunks: []int{6 * mib, 5 * mib, 9*mib + 3, 1}},
		{Name: "monolithic", Chunks: []int{12 * mib}, Monolithic: true},
		{Name: "empty blob", Chunks: []int{0}},
	})
	assertNoUploads(t, s, bucket)
}

// TestContentPurge purges uploads left in the bucket (see
// storagetest.RunContentPurge): no object and no multipart upload of
// theirs may remain.
func TestContentPurge(t *testing.T) {
	d, s, bucket := newTestDriver(t, "/registry")
	storagetest.RunContentPurge(t, d)
	assertNoUploads(t, s, bucket)
}

// TestContentBackupRestore migrates a registry from the filesystem into
// the bucket with berth's backup and restore (see
// storagetest.RunBackupRestore).
func TestContentBackupRestore(t *testing.T) {
	d, s, bucket := newTestDriver(t, "/registry")
	src, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunBackupRestore(t, src, d)
	assertNoUploads(t, s, bucket)
}
