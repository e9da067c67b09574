package content_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

const v2 = "/docker/registry/v2"

// seedLayout writes n repositories in distribution's layout, each with one
// manifest tagged "latest", straight into the driver.
func seedLayout(t *testing.T, d storage.Driver, names []string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range names {
		body := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromString(name))
		dg := digest.FromBytes(body)
		hex := dg.Encoded()
		for p, v := range map[string][]byte{
			v2 + "/blobs/sha256/" + hex[:2] + "/" + hex + "/data":                                  body,
			v2 + "/repositories/" + name + "/_manifests/revisions/sha256/" + hex + "/link":         []byte(dg),
			v2 + "/repositories/" + name + "/_manifests/tags/latest/current/link":                  []byte(dg),
			v2 + "/repositories/" + name + "/_manifests/tags/latest/index/sha256/" + hex + "/link": []byte(dg),
		} {
			if err := d.PutContent(ctx, p, v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// failing fails every read under one repository.
type failing struct {
	storage.Driver
	repo string
}

var errDisk = errors.New("disk error")

func (f failing) GetContent(ctx context.Context, p string) ([]byte, error) {
	if strings.Contains(p, "/repositories/"+f.repo+"/") {
		return nil, errDisk
	}
	return f.Driver.GetContent(ctx, p)
}

func newRebuildRegistry(t *testing.T, d storage.Driver) (*content.Registry, *index.Bolt) {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return content.New(d, idx, content.Options{}), idx
}

// Rebuild streams repositories from many readers into the index; it must
// end with all of them, or with the first error, never hang.
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	var names []string
	for i := range 300 {
		names = append(names, fmt.Sprintf("org%d/app%03d", i%7, i))
	}
	d := inmemory.New()
	seedLayout(t, d, names)

	t.Run("all", func(t *testing.T) {
		reg, idx := newRebuildRegistry(t, d)
		n, err := reg.Rebuild(ctx)
		if err != nil || n != len(names) {
			t.Fatalf("Rebuild = %d, %v; want %d", n, err, len(names))
		}
		repos, err := idx.Repositories(ctx, "", -1)
		if err != nil || len(repos) != len(names) {
			t.Fatalf("index lists %d repositories (%v), want %d", len(repos), err, len(names))
		}
		if _, ok, err := idx.Tag(ctx, names[123], "latest"); err != nil || !ok {
			t.Fatalf("tag of %s: %v, %v", names[123], ok, err)
		}
		if idx.Stale() {
			t.Fatal("stale after a rebuild")
		}
	})

	t.Run("read error", func(t *testing.T) {
		reg, idx := newRebuildRegistry(t, failing{d, names[200]})
		_, err := reg.Rebuild(ctx)
		if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), names[200]) {
			t.Fatalf("Rebuild = %v; want the disk error naming %s", err, names[200])
		}
		if !idx.Stale() {
			t.Fatal("an index whose rebuild failed must stay stale")
		}
	})

	t.Run("corrupt link skipped", func(t *testing.T) {
		d := inmemory.New()
		seedLayout(t, d, []string{"good/app", "bad/app"})
		if err := d.PutContent(ctx, v2+"/repositories/bad/app/_manifests/tags/latest/current/link", []byte("not a digest")); err != nil {
			t.Fatal(err)
		}
		reg, idx := newRebuildRegistry(t, d)
		if n, err := reg.Rebuild(ctx); err != nil || n != 2 {
			t.Fatalf("Rebuild = %d, %v; want 2 repositories", n, err)
		}
		if _, ok, _ := idx.Tag(ctx, "bad/app", "latest"); ok {
			t.Fatal("a tag with a corrupt link was indexed")
		}
		if _, ok, _ := idx.Tag(ctx, "good/app", "latest"); !ok {
			t.Fatal("good/app:latest missing")
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		reg, _ := newRebuildRegistry(t, d)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := reg.Rebuild(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Rebuild with a cancelled context = %v, want context.Canceled", err)
		}
	})
}
