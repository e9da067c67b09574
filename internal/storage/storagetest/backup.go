package storagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
)

// RunBackupRestore migrates a registry from src into dst, as "berth
// backup" and "berth restore" do: it pushes an index of two images, one
// with a layer larger than a part or segment, into a registry over src,
// backs it up (gzip), restores the archive into dst, which must be empty,
// and pulls everything back from dst, checking digests.
func RunBackupRestore(t *testing.T, src, dst storage.Driver) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	openIndex := func() *index.Bolt {
		idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		return idx
	}
	from := content.New(src, openIndex(), content.Options{Logger: quiet})
	const repo = "team/app"
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	var blobs []desc
	put := func(mt string, b []byte) desc {
		d := desc{mt, digest.FromBytes(b), len(b)}
		if _, err := from.PutBlob(ctx, repo, d.Digest, bytes.NewReader(b)); err != nil {
			t.Fatalf("PutBlob: %v", err)
		}
		blobs = append(blobs, d)
		return d
	}
	manifest := func(ref, mt string, doc map[string]any) desc {
		doc["schemaVersion"], doc["mediaType"] = 2, mt
		body, _ := json.Marshal(doc)
		if ref == "" {
			ref = digest.FromBytes(body).String()
		}
		if _, err := from.PutManifest(ctx, repo, ref, mt, body); err != nil {
			t.Fatalf("PutManifest: %v", err)
		}
		return desc{mt, digest.FromBytes(body), len(body)}
	}
	var children []desc
	for i, size := range []int{12<<20 + 5, 100} {
		cfg := put("application/vnd.oci.image.config.v1+json", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		layer := put("application/vnd.oci.image.layer.v1.tar+gzip", RandomBytes(uint64(3000+i), size))
		children = append(children, manifest("", content.MediaTypeOCIManifest, map[string]any{"config": cfg, "layers": []desc{layer}}))
	}
	top := manifest("latest", content.MediaTypeOCIIndex, map[string]any{"manifests": children})

	var archive bytes.Buffer
	if _, err := from.Backup(ctx, &archive, content.BackupOptions{Gzip: true}); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	to := content.New(dst, openIndex(), content.Options{Logger: quiet})
	res, err := to.Restore(ctx, &archive)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if res.Tags != 1 || res.Manifests != 3 || res.Blobs != len(blobs)+3 {
		t.Errorf("Restore = %+v; want 1 tag, 3 manifests, %d blobs", res, len(blobs)+3)
	}
	if m, err := to.GetManifest(ctx, repo, "latest"); err != nil || m.Digest != top.Digest {
		t.Fatalf("GetManifest latest = %s, %v; want %s", m.Digest, err, top.Digest)
	}
	for _, c := range children {
		if m, err := to.GetManifest(ctx, repo, c.Digest.String()); err != nil || digest.FromBytes(m.Body) != c.Digest {
			t.Fatalf("GetManifest %s: %v", c.Digest, err)
		}
	}
	for _, b := range blobs {
		if _, err := to.Blob(ctx, repo, b.Digest); err != nil {
			t.Fatalf("Blob %s: %v", b.Digest, err)
		}
		rc, err := to.ReadBlob(ctx, b.Digest, 0)
		if err != nil {
			t.Fatalf("ReadBlob %s: %v", b.Digest, err)
		}
		got, err := digest.SHA256.FromReader(rc)
		rc.Close()
		if err != nil || got != b.Digest {
			t.Fatalf("blob %s reads back as %s (%v)", b.Digest, got, err)
		}
	}
	if _, err := dst.Stat(ctx, "/berth/restore"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("restore left its staging directory: %v", err)
	}
}
