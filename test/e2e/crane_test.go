//go:build e2e

package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/test/harness"
)

// TestCraneCatalogDigestAppendMutateDelete: crane append builds an image
// from scratch and a second one on top of it (the files of both layers are
// in `crane export`); crane mutate adds a label and env (new config and
// digest, same layers); crane digest agrees with berth's
// Docker-Content-Digest; crane catalog lists exactly the repositories; crane
// delete removes a manifest (404 after, tag gone, the others untouched).
func TestCraneCatalogDigestAppendMutateDelete(t *testing.T) {
	t.Parallel()
	requireTool(t, "crane")
	b := harness.Start(t, harness.Options{})
	dir := t.TempDir()
	c := runner{t: t, dir: dir, env: []string{"HOME=" + dir}}
	crane := func(args ...string) string {
		t.Helper()
		return c.run("crane", append(args, "--insecure")...)
	}

	baseFile := []byte("base layer by crane append\n")
	topFile := []byte("top layer by crane append\n")
	writeFile(t, filepath.Join(dir, "base.tar"), tarOf(t, map[string][]byte{"base.txt": baseFile}))
	writeFile(t, filepath.Join(dir, "top.tar"), tarOf(t, map[string][]byte{"etc/top.txt": topFile}))

	base := b.Addr + "/e2e/crane/base:v1"
	app := b.Addr + "/e2e/crane/app:v1"
	mutated := b.Addr + "/e2e/crane/app:mutated"
	crane("append", "-f", filepath.Join(dir, "base.tar"), "-t", base)
	crane("append", "-b", base, "-f", filepath.Join(dir, "top.tar"), "-t", app)

	digest := func(ref string) string {
		t.Helper()
		return strings.TrimSpace(crane("digest", ref))
	}
	baseDigest, appDigest := digest(base), digest(app)
	if got := getManifest(t, b, "e2e/crane/base", "v1").Digest; got != baseDigest {
		t.Errorf("crane digest %s, berth %s", baseDigest, got)
	}
	appM := getManifest(t, b, "e2e/crane/app", "v1")
	if appM.Digest != appDigest {
		t.Errorf("crane digest %s, berth %s", appDigest, appM.Digest)
	}
	var appMan Manifest
	mustJSON(t, appM.Body, &appMan)
	if len(appMan.Layers) != 2 {
		t.Fatalf("appended image has %d layers, want 2", len(appMan.Layers))
	}
	exported := []byte(crane("export", app, "-"))
	for name, want := range map[string][]byte{"base.txt": baseFile, "etc/top.txt": topFile} {
		got, _, found := fileFromTar(t, bytes.NewReader(exported), name)
		if !found || !bytes.Equal(got, want) {
			t.Errorf("crane export: %s = %q (found %v), want %q", name, got, found, want)
		}
	}

	// mutate: new config, same layers.
	crane("mutate", app, "--label", "org.berth.e2e=mutated", "--env", "BERTH_E2E=1", "-t", mutated)
	mutDigest := digest(mutated)
	if mutDigest == appDigest {
		t.Fatalf("crane mutate left the digest unchanged")
	}
	var cfg struct {
		Config struct {
			Labels map[string]string
			Env    []string
		} `json:"config"`
	}
	mustJSON(t, []byte(crane("config", mutated)), &cfg)
	if cfg.Config.Labels["org.berth.e2e"] != "mutated" || !slices.Contains(cfg.Config.Env, "BERTH_E2E=1") {
		t.Errorf("mutated config: %+v", cfg.Config)
	}
	var mutMan Manifest
	mustJSON(t, getManifest(t, b, "e2e/crane/app", "mutated").Body, &mutMan)
	if len(mutMan.Layers) != 2 || mutMan.Layers[0].Digest != appMan.Layers[0].Digest || mutMan.Layers[1].Digest != appMan.Layers[1].Digest {
		t.Errorf("mutated layers %v, want %v", mutMan.Layers, appMan.Layers)
	}

	// catalog and ls.
	if got := lines(crane("catalog", b.Addr)); !slices.Equal(got, []string{"e2e/crane/app", "e2e/crane/base"}) {
		t.Errorf("crane catalog: %v", got)
	}
	if got := lines(crane("ls", b.Addr+"/e2e/crane/app")); !slices.Equal(sorted(got), []string{"mutated", "v1"}) {
		t.Errorf("crane ls e2e/crane/app: %v", got)
	}

	// delete the mutated manifest by digest.
	crane("delete", b.Addr+"/e2e/crane/app@"+mutDigest)
	if st := headManifestStatus(t, b, "e2e/crane/app", mutDigest); st != http.StatusNotFound {
		t.Errorf("deleted manifest: HEAD %d, want 404", st)
	}
	c.fails("crane", "digest", "--insecure", mutated)
	if got := lines(crane("ls", b.Addr+"/e2e/crane/app")); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("crane ls after delete: %v, want [v1]", got)
	}
	if got := digest(app); got != appDigest {
		t.Errorf("e2e/crane/app:v1 after the delete: %s, want %s", got, appDigest)
	}
	if got := digest(base); got != baseDigest {
		t.Errorf("e2e/crane/base:v1 after the delete: %s, want %s", got, baseDigest)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
