package cli

import (
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func gcConfig(t *testing.T, dir, root, addr string) string {
	t.Helper()
	return writeFile(t, filepath.Join(dir, "config.yml"), `version: 0.1
storage:
  filesystem:
    rootdirectory: `+root+`
  delete:
    enabled: true
http:
  addr: `+addr+`
`)
}

// layoutFiles reads every file of the storage layout (not berth's own
// index files), for byte comparisons.
func layoutFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(root, "docker"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func blobFile(root string, b []byte) string {
	hex := strings.TrimPrefix(sha(b), "sha256:")
	return filepath.Join(root, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// `berth garbage-collect` on a tree a berth wrote: with the tag of one
// image deleted, -m deletes that image and nothing of the other, the dry
// run before it changes nothing, and a berth started afterwards serves
// the kept image and knows nothing of the deleted one.
func TestGarbageCollect(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	addr := freeAddr(t)
	cfg := gcConfig(t, dir, root, addr)
	keep, drop := newImage("gc keep"), newImage("gc drop")

	b := serve(t, dir, "http://"+addr, nil, cfg)
	push(t, b.base, "team/app", "keep", keep)
	push(t, b.base, "team/app", "drop", drop)
	resp, body := do(t, http.MethodDelete, b.base+"/v2/team/app/manifests/drop", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE tag: %s %s", resp.Status, body)
	}
	b.stopClean(t)

	// The configuration from the environment, as registry:2 reads it.
	before := layoutFiles(t, root)
	r := berth(t, dir, []string{"REGISTRY_CONFIGURATION_PATH=" + cfg}, "", "garbage-collect", "--dry-run", "-m")
	if r.code != 0 {
		t.Fatalf("garbage-collect --dry-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"team/app: marking manifest " + sha(keep.manifest),
		"team/app: manifest eligible for deletion: " + sha(drop.manifest),
		"blob eligible for deletion: " + sha(drop.layer),
		"3 blobs and 1 manifests eligible for deletion",
		"dry run: nothing deleted; 1 manifests and 3 blobs",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !maps.Equal(before, layoutFiles(t, root)) {
		t.Fatal("a dry run changed the storage layout")
	}

	r = berth(t, dir, nil, "", "garbage-collect", cfg, "--delete-untagged")
	if r.code != 0 {
		t.Fatalf("garbage-collect -m: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"team/app: manifest eligible for deletion: " + sha(drop.manifest),
		"deleted 1 manifests and 3 blobs, freed",
		"rebuilt from filesystem storage: 1 repositories",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, blob := range [][]byte{drop.manifest, drop.config, drop.layer} {
		if exists(t, blobFile(root, blob)) {
			t.Errorf("blob %s of the untagged image is still stored", sha(blob))
		}
	}
	for _, blob := range [][]byte{keep.manifest, keep.config, keep.layer} {
		if !exists(t, blobFile(root, blob)) {
			t.Errorf("blob %s of the tagged image was deleted", sha(blob))
		}
	}

	b = serve(t, dir, "http://"+addr, nil, cfg)
	pull(t, b.base, "team/app", "keep", keep)
	if resp, _ := do(t, http.MethodGet, b.base+"/v2/team/app/manifests/"+sha(drop.manifest), "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET deleted manifest: %s, want 404", resp.Status)
	}
	if resp, _ := do(t, http.MethodHead, b.base+"/v2/team/app/blobs/"+sha(drop.layer), "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD deleted blob: %s, want 404", resp.Status)
	}

	// While berth serves the same root, nothing is done.
	before = layoutFiles(t, root)
	r = berth(t, dir, nil, "", "garbage-collect", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "berth is running on this storage") || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("garbage-collect while berth serves: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if !maps.Equal(before, layoutFiles(t, root)) {
		t.Fatal("a refused garbage-collect changed the storage layout")
	}
	pull(t, b.base, "team/app", "keep", keep)
}

// What garbage-collect cannot make safe, it refuses before touching
// anything: storage shared through the PostgreSQL index (no way to know
// every instance stopped) and a read-only configuration.
func TestGarbageCollectRefuses(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	cfg := gcConfig(t, dir, root, freeAddr(t))
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"postgres", []string{"REGISTRY_BERTH_INDEX_POSTGRES_DSN=postgres://berth@127.0.0.1:1/berth"}, "PostgreSQL index (berth.index.postgres) is not supported yet"},
		{"read-only", []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true"}, "storage.maintenance.readonly is enabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := berth(t, dir, c.env, "", "garbage-collect", cfg, "-m")
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant a refusal saying %q", r.code, r.stderr, c.want)
			}
			if r.stdout != "" {
				t.Errorf("a refused run printed:\n%s", r.stdout)
			}
		})
	}
	if exists(t, root) {
		t.Error("a refused garbage-collect created the storage root")
	}
}
