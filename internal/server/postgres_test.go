package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/internal/testlog"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/index/postgres"
	"github.com/berth-registry/berth/internal/index/postgres/pgtest"
	"github.com/berth-registry/berth/internal/storage/filesystem"
)

// seedTree writes images into a storage tree the way any registry would,
// without touching a shared index: as if registry:2 had written it.
func seedTree(t *testing.T, root string, repos ...string) map[string]digest.Digest {
	t.Helper()
	fs, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	scratch, err := index.Open(filepath.Join(t.TempDir(), "scratch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	reg := content.New(fs, scratch, content.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	out := map[string]digest.Digest{}
	for _, repo := range repos {
		out[repo] = seedImage(t, reg, repo, "latest", repo)
	}
	return out
}

func seedImage(t *testing.T, reg *content.Registry, repo, tag, seed string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	cfg, layer := []byte(`{"seed":"`+seed+`"}`), []byte("layer of "+seed)
	for _, b := range [][]byte{cfg, layer} {
		if _, err := reg.PutBlob(ctx, repo, digest.FromBytes(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		content.MediaTypeOCIManifest, digest.FromBytes(cfg), len(cfg), digest.FromBytes(layer), len(layer))
	m, err := reg.PutManifest(ctx, repo, tag, content.MediaTypeOCIManifest, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return m.Digest
}

func startPG(t *testing.T, srv *pgtest.Server, opts Options) (*Server, *httptest.Server, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v\n%s", err, logs)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs, logs
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func catalog(t *testing.T, base string) []string {
	t.Helper()
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if code := getJSON(t, base+"/v2/_catalog", &c); code != http.StatusOK {
		t.Fatalf("catalog: %d", code)
	}
	return c.Repositories
}

func dbName(dsn string) string {
	return dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
}

// rowCounts is a fingerprint of the shared index's content.
func rowCounts(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out string
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM berth_repositories) || '/' ||
		(SELECT count(*) FROM berth_manifests) || '/' || (SELECT count(*) FROM berth_tags) || '/' ||
		coalesce((SELECT value FROM berth_meta WHERE key = 'built_at'), 'never')`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPostgresIndex: berth over an existing tree with a shared index builds
// it once, on the first start of a writable instance, not on later starts;
// read-only instances never write to it.
func TestPostgresIndex(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()

	t.Run("BuiltOnceOnFirstStart", func(t *testing.T) {
		root := t.TempDir()
		seeded := seedTree(t, root, "library/alpine", "team/app")
		dsn := pg.NewDatabase(t)
		s, hs, logs := startPG(t, pg, Options{RootDirectory: root, IndexDSN: dsn})
		if !strings.Contains(logs.String(), "building index from storage") {
			t.Errorf("first start did not build the index:\n%s", logs)
		}
		if got := catalog(t, hs.URL); strings.Join(got, ",") != "library/alpine,team/app" {
			t.Errorf("catalog = %v", got)
		}
		var tags struct{ Tags []string }
		if code := getJSON(t, hs.URL+"/v2/team/app/tags/list", &tags); code != 200 || len(tags.Tags) != 1 {
			t.Errorf("tags: %d %v", code, tags.Tags)
		}
		built := rowCounts(t, dsn)
		hs.Close()
		s.Close()

		// Second start: the index is not rebuilt (built_at unchanged).
		_, hs2, logs2 := startPG(t, pg, Options{RootDirectory: root, IndexDSN: dsn})
		if strings.Contains(logs2.String(), "building index") {
			t.Errorf("second start rebuilt the index:\n%s", logs2)
		}
		if rowCounts(t, dsn) != built {
			t.Errorf("index changed by a plain restart: %s, was %s", rowCounts(t, dsn), built)
		}
		resp, err := http.Head(hs2.URL + "/v2/library/alpine/manifests/latest")
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != string(seeded["library/alpine"]) {
			t.Errorf("HEAD alpine:latest: %v %v", resp, err)
		}

		// An explicit rebuild does rebuild.
		n, err := RebuildIndex(ctx, Options{RootDirectory: root, IndexDSN: dsn})
		if err != nil || n != 2 {
			t.Fatalf("RebuildIndex: %d, %v", n, err)
		}
		if rowCounts(t, dsn) == built {
			t.Error("RebuildIndex did not record a new build")
		}
	})

	t.Run("StartTogether", func(t *testing.T) {
		root := t.TempDir()
		seedTree(t, root, "a", "b", "c")
		dsn := pg.NewDatabase(t)
		var wg sync.WaitGroup
		logs := make([]*testlog.Buffer, 3)
		for i := range logs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				logs[i] = &testlog.Buffer{}
				s, err := New(ctx, Options{RootDirectory: root, IndexDSN: dsn, Logger: slog.New(slog.NewTextHandler(logs[i], nil))})
				if err != nil {
					t.Error(err)
					return
				}
				s.Close()
			}()
		}
		wg.Wait()
		builds := 0
		for _, l := range logs {
			builds += strings.Count(l.String(), "building index from storage")
		}
		if builds != 1 {
			t.Errorf("%d builds by three instances starting together, want 1", builds)
		}
	})

	t.Run("ReadOnlyNeverWrites", func(t *testing.T) {
		root := t.TempDir()
		seedTree(t, root, "app")
		dsn := pg.NewDatabase(t)
		db := dbName(dsn)

		// No schema yet: a read-only instance refuses to start, creating
		// nothing.
		_, err := New(ctx, Options{RootDirectory: root, IndexDSN: dsn, ReadOnly: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !strings.Contains(err.Error(), "start a writable berth") {
			t.Fatalf("read-only start on an empty database: %v", err)
		}

		// Schema but never built: it starts, warns, and does not build.
		x, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		x.Close()
		pg.Exec(t, db,
			`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth_reader') THEN CREATE ROLE berth_reader LOGIN; END IF; END $$`,
			`GRANT SELECT ON ALL TABLES IN SCHEMA public TO berth_reader`)
		roDSN := pg.DSN(db, "berth_reader")
		before := rowCounts(t, dsn)
		_, hs, logs := startPG(t, pg, Options{RootDirectory: root, IndexDSN: roDSN, ReadOnly: true})
		if !strings.Contains(logs.String(), "never been built") || strings.Contains(logs.String(), "building index") {
			t.Errorf("read-only start on an unbuilt index:\n%s", logs)
		}
		// Pulls by tag work from storage (and do not teach the index).
		resp, err := http.Get(hs.URL + "/v2/app/manifests/latest")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET app:latest on read-only: %v %v\n%s", resp, err, logs)
		}
		resp.Body.Close()
		// Writes are refused.
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v2/app/blobs/uploads/", nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST upload on read-only: %v %v", resp, err)
		}
		resp.Body.Close()
		if after := rowCounts(t, dsn); after != before {
			t.Errorf("a read-only instance wrote to the shared index: %s, was %s", after, before)
		}

		// Once a writable instance built it, the read-only one lists it.
		_, _, _ = startPG(t, pg, Options{RootDirectory: root, IndexDSN: dsn})
		if got := catalog(t, hs.URL); strings.Join(got, ",") != "app" {
			t.Errorf("read-only catalog after the build: %v", got)
		}
	})
}
