//go:build e2e

package multi

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/bench/seed"
	"github.com/berth-registry/berth/internal/index/postgres/pgtest"
	"github.com/berth-registry/berth/test/harness"
)

// TestImportTree measures how long berth takes to build its index over an
// existing registry:2 tree (bench/seed writes distribution's layout file by
// file): the embedded index and the PostgreSQL one, on the filesystem and on
// S3. Nothing is asserted about time (timed assertions do not belong in
// tests); the numbers are logged, and docs/high-availability.md quotes them.
// BERTH_IMPORT_REPOS sets the number of repositories (default 1000).
func TestImportTree(t *testing.T) {
	repos := 1000
	if v := os.Getenv("BERTH_IMPORT_REPOS"); v != "" {
		n, err := strconv.Atoi(v)
		check(t, err)
		repos = n
	}
	pg := pgtest.Start(t)
	tree := filepath.Join(t.TempDir(), "tree")
	res, err := seed.Write(seed.Options{Root: tree, Repos: repos, Tags: 100})
	check(t, err)
	t.Logf("seeded %+v", res)

	run := func(t *testing.T, b *backend, extra string) {
		cfg := filepath.Join(t.TempDir(), "config.yml")
		root := b.root
		if root == "" {
			root = t.TempDir()
		}
		check(t, os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n%s", root, extra)), 0o644))
		cmd := exec.Command(harness.Binary(t), "index", "rebuild", cfg)
		cmd.Env = append(cleanEnv(), b.env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("berth index rebuild: %v\n%s", err, out)
		}
		took := time.Since(start)
		t.Logf("%s (whole command %v)", strings.TrimSpace(string(lastLine(out))), took.Round(time.Millisecond))
		if !strings.Contains(string(out), fmt.Sprintf(": %d repositories", res.Repos)) {
			t.Errorf("rebuild did not find %d repositories: %s", res.Repos, out)
		}
	}

	t.Run("filesystem", func(t *testing.T) {
		b := filesystemBackend(t)
		check(t, os.CopyFS(b.root, os.DirFS(tree)))
		t.Run("embedded", func(t *testing.T) { run(t, b, "") })
		t.Run("postgres", func(t *testing.T) { run(t, b, indexConfig(pg.NewDatabase(t))) })
	})
	t.Run("s3", func(t *testing.T) {
		b := s3Backend(t)
		d := b.driver(t)
		start := time.Now()
		files := 0
		check(t, filepath.WalkDir(tree, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(tree, p)
			files++
			return d.PutContent(context.Background(), "/"+filepath.ToSlash(rel), data)
		}))
		t.Logf("copied %d objects into the bucket in %v", files, time.Since(start).Round(time.Millisecond))
		t.Run("postgres", func(t *testing.T) { run(t, b, indexConfig(pg.NewDatabase(t))) })
	})
}
