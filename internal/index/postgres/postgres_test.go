package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index/indextest"
	"github.com/berth-registry/berth/internal/index/postgres/pgtest"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, dsn string, readOnly bool) *Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x, err := Open(ctx, Options{DSN: dsn, ReadOnly: readOnly, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// TestPostgres runs everything against one real PostgreSQL server, started
// once (initdb is the slow part); each test gets its own database.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("Suite", func(t *testing.T) {
		indextest.Run(t, func(t *testing.T) content.Index {
			return open(t, srv.NewDatabase(t), false)
		})
	})
	t.Run("MigrateConcurrently", func(t *testing.T) { testMigrateConcurrently(t, srv) })
	t.Run("NewerSchemaRefused", func(t *testing.T) { testNewerSchema(t, srv) })
	t.Run("ReadOnlyNeedsSchema", func(t *testing.T) { testReadOnlyNeedsSchema(t, srv) })
	t.Run("ReadOnlyWithSelectOnlyRole", func(t *testing.T) { testReadOnlyRole(t, srv) })
	t.Run("EnsureBuiltOnce", func(t *testing.T) { testEnsureBuiltOnce(t, srv) })
	t.Run("OneConnection", func(t *testing.T) { testOneConnection(t, srv) })
	t.Run("LockTagExcludes", func(t *testing.T) { testLockTagExcludes(t, srv) })
	t.Run("LockTagAfterCrash", func(t *testing.T) { testLockTagAfterCrash(t, srv) })
	t.Run("RegistryRepairsTagAfterCrash", func(t *testing.T) { testRegistryRepair(t, srv) })
	t.Run("TwoRegistriesOneTag", func(t *testing.T) { testTwoRegistriesOneTag(t, srv) })
}

func testMigrateConcurrently(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := Open(context.Background(), Options{DSN: dsn, Logger: quiet})
			if err == nil {
				x.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	x := open(t, dsn, false)
	v, err := schemaVersion(context.Background(), x.pool)
	if err != nil || v != SchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, SchemaVersion)
	}
}

func testNewerSchema(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	open(t, dsn, false).Close()
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	srv.Exec(t, db, fmt.Sprintf(`UPDATE berth_meta SET value = '%d' WHERE key = 'schema_version'`, SchemaVersion+1))
	for _, ro := range []bool{false, true} {
		_, err := Open(context.Background(), Options{DSN: dsn, ReadOnly: ro, Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), "upgrade berth") {
			t.Errorf("readonly=%v: open of a newer schema: %v", ro, err)
		}
	}
}

func testReadOnlyNeedsSchema(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	_, err := Open(context.Background(), Options{DSN: dsn, ReadOnly: true, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "start a writable berth") {
		t.Fatalf("read-only open of an empty database: %v", err)
	}
	// It created nothing.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("a read-only open created %d tables", tables)
	}
}

// testReadOnlyRole opens the index read-only as a role that may only
// SELECT: everything a read-only registry needs works, and nothing it does
// needs more.
func testReadOnlyRole(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	rw := open(t, dsn, false)
	m := indextest.Record("m")
	if err := rw.PutManifest(ctx, "r", m); err != nil {
		t.Fatal(err)
	}
	if err := rw.PutTag(ctx, "r", "latest", m.Digest); err != nil {
		t.Fatal(err)
	}
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	srv.Exec(t, db,
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth_reader') THEN CREATE ROLE berth_reader LOGIN; END IF; END $$`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO berth_reader`)
	ro := open(t, srv.DSN(db, "berth_reader"), true)
	d, ok, err := ro.Tag(ctx, "r", "latest")
	if err != nil || !ok || d != m.Digest {
		t.Fatalf("read-only Tag: %s %v %v", d, ok, err)
	}
	repos, err := ro.Repositories(ctx, "", -1)
	if err != nil || len(repos) != 1 {
		t.Fatalf("read-only Repositories: %v %v", repos, err)
	}
	if err := ro.PutTag(ctx, "r", "x", m.Digest); err == nil {
		t.Error("PutTag on a read-only index succeeded")
	}
	if _, _, err := ro.LockTag(ctx, "r", "x"); err == nil {
		t.Error("LockTag on a read-only index succeeded")
	}
	if _, err := ro.EnsureBuilt(ctx, func(context.Context) error { return nil }); err == nil {
		t.Error("EnsureBuilt on a read-only index succeeded")
	}
}

func testEnsureBuiltOnce(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	const n = 4
	var builds atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, n)
	idxs := make([]*Index, n)
	for i := range n {
		idxs[i] = open(t, dsn, false)
		if built, _, err := idxs[i].Built(ctx); err != nil || built {
			t.Fatalf("new index built=%v err=%v", built, err)
		}
	}
	for i, x := range idxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = x.EnsureBuilt(ctx, func(ctx context.Context) error {
				builds.Add(1)
				// Build only once the others wait for the build lock, so
				// they are sure to have found the index unbuilt.
				waitFor(t, func() bool { return advisoryWaiters(x) == n-1 })
				return x.Replace(ctx, content.Snapshots([]content.RepositorySnapshot{{Name: "r", Manifests: []content.ManifestRecord{indextest.Record("m")}}}))
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if builds.Load() != 1 {
		t.Fatalf("%d builds, want 1", builds.Load())
	}
	x := open(t, dsn, false)
	built, at, err := x.Built(ctx)
	if err != nil || !built || time.Since(at) > time.Hour {
		t.Fatalf("built=%v at=%v err=%v", built, at, err)
	}
	ran, err := x.EnsureBuilt(ctx, func(context.Context) error { t.Error("built again"); return nil })
	if err != nil || ran {
		t.Fatalf("second EnsureBuilt: ran=%v err=%v", ran, err)
	}
	// A failed build leaves the index unbuilt.
	dsn2 := srv.NewDatabase(t)
	y := open(t, dsn2, false)
	boom := errors.New("boom")
	if _, err := y.EnsureBuilt(ctx, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed build: %v", err)
	}
	if built, _, _ := y.Built(ctx); built {
		t.Fatal("index built after a failed build")
	}
}

// testOneConnection: with maxconns 1 nothing waits for a connection it
// holds itself (a build under the build lock, a tag change under its lock).
func testOneConnection(t *testing.T, srv *pgtest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x, err := Open(ctx, Options{DSN: srv.NewDatabase(t), MaxConns: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	reg := content.New(inmemory.New(), x, content.Options{Logger: quiet})
	if _, err := x.EnsureBuilt(ctx, func(ctx context.Context) error { _, err := reg.Rebuild(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	image(t, reg, "app", "latest", "one")
	if _, err := reg.StatManifest(ctx, "app", "latest"); err != nil {
		t.Fatal(err)
	}
}

// testLockTagExcludes: two processes (two Index values, two pools) never
// hold one tag's lock at once; other tags do not wait.
func testLockTagExcludes(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a, b := open(t, dsn, false), open(t, dsn, false)
	unlockA, unfinished, err := a.LockTag(ctx, "r", "t")
	if err != nil || unfinished {
		t.Fatalf("LockTag: unfinished=%v err=%v", unfinished, err)
	}
	// Another tag is free.
	unlockOther, _, err := b.LockTag(ctx, "r", "other")
	if err != nil {
		t.Fatal(err)
	}
	unlockOther(true)
	// The same tag waits for A.
	got := make(chan bool, 1)
	go func() {
		unlockB, unfinished, err := b.LockTag(ctx, "r", "t")
		if err != nil {
			t.Error(err)
			got <- false
			return
		}
		unlockB(true)
		got <- unfinished
	}()
	// B is waiting on A's lock: visible in pg_locks as an ungranted
	// advisory lock.
	waitFor(t, func() bool { return advisoryWaiters(a) == 1 })
	select {
	case <-got:
		t.Fatal("B got the lock A holds")
	default:
	}
	unlockA(true)
	if unfinished := <-got; unfinished {
		t.Error("B found A's finished change unfinished")
	}
	// A lock request given up (context cancelled) leaves nothing behind.
	unlockA, _, err = a.LockTag(ctx, "r", "t")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, _, err = b.LockTag(cctx, "r", "t")
	cancel()
	if err == nil {
		t.Fatal("LockTag of a held tag returned before its context ended")
	}
	unlockA(true)
	unlockB, _, err := b.LockTag(ctx, "r", "t")
	if err != nil {
		t.Fatal(err)
	}
	unlockB(true)
	left, err := a.UnfinishedTags(ctx)
	if err != nil || len(left) != 0 {
		t.Fatalf("unfinished tags after clean unlocks: %v %v", left, err)
	}
}

// advisoryWaiters counts connections waiting for an advisory lock.
func advisoryWaiters(x *Index) int {
	var n int
	x.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashHolder simulates a process dying while it holds a tag's lock: its
// connection to PostgreSQL ends (the server releases the lock), and its
// note stays.
func crashHolder(t *testing.T, x *Index, repo, tag string) {
	t.Helper()
	ctx := context.Background()
	unlock, _, err := x.LockTag(ctx, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	err = x.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the lock holder's connection: %d, %v", killed, err)
	}
	// Let go of the dead connection on our side (the note stays: a dead
	// process clears nothing).
	unlock(false)
}

func testLockTagAfterCrash(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	dead, live := open(t, dsn, false), open(t, dsn, false)
	crashHolder(t, dead, "r", "t")
	left, err := live.UnfinishedTags(ctx)
	if err != nil || len(left) != 1 || left[0] != (content.RepoTag{Repo: "r", Tag: "t"}) {
		t.Fatalf("unfinished tags: %v %v", left, err)
	}
	unlock, unfinished, err := live.LockTag(ctx, "r", "t")
	if err != nil || !unfinished {
		t.Fatalf("LockTag after a crash: unfinished=%v err=%v", unfinished, err)
	}
	// A failed change keeps the note for the next holder...
	unlock(false)
	unlock, unfinished, err = live.LockTag(ctx, "r", "t")
	if err != nil || !unfinished {
		t.Fatalf("LockTag after a failed change: unfinished=%v err=%v", unfinished, err)
	}
	// ...a finished one clears it.
	unlock(true)
	unlock, unfinished, err = live.LockTag(ctx, "r", "t")
	if err != nil || unfinished {
		t.Fatalf("LockTag after a finished change: unfinished=%v err=%v", unfinished, err)
	}
	unlock(true)
}

// image pushes a one-layer image into repo through reg, tagged tag.
func image(t *testing.T, reg *content.Registry, repo, tag, seed string) content.Manifest {
	t.Helper()
	ctx := context.Background()
	var descs []string
	for _, b := range []string{"{}", "layer " + seed} {
		d := indextest.Digest(b)
		if _, err := reg.PutBlob(ctx, repo, d, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}`, d, len(b)))
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s]}`,
		content.MediaTypeOCIManifest, strings.Replace(descs[0], "layer.v1.tar", "config.v1+json", 1), descs[1])
	m, err := reg.PutManifest(ctx, repo, tag, content.MediaTypeOCIManifest, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testRegistryRepair: a process moves a tag in storage and dies before the
// index write. The index still has the old digest; the next start's
// RepairTags (or the next change of that tag) restores agreement.
func testRegistryRepair(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	driver := inmemory.New()
	idx := open(t, dsn, false)
	reg := content.New(driver, idx, content.Options{Logger: quiet, DeleteEnabled: true})
	m1 := image(t, reg, "app", "latest", "one")
	m2 := image(t, reg, "app", "v2", "two")
	image(t, reg, "app", "gone", "three")

	// The dying process: moves latest to m2 and deletes "gone" in storage,
	// then dies before telling the index.
	dead := open(t, dsn, false)
	crashHolder(t, dead, "app", "latest")
	link := "/docker/registry/v2/repositories/app/_manifests/tags/latest/current/link"
	if err := driver.PutContent(ctx, link, []byte(m2.Digest)); err != nil {
		t.Fatal(err)
	}
	crashHolder(t, dead, "app", "gone")
	if err := driver.Delete(ctx, "/docker/registry/v2/repositories/app/_manifests/tags/gone"); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := idx.Tag(ctx, "app", "latest"); d != m1.Digest {
		t.Fatalf("setup: index latest = %s", d)
	}

	n, err := reg.RepairTags(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RepairTags: %d, %v", n, err)
	}
	if d, _, _ := idx.Tag(ctx, "app", "latest"); d != m2.Digest {
		t.Errorf("after repair: latest = %s, want %s", d, m2.Digest)
	}
	if _, ok, _ := idx.Tag(ctx, "app", "gone"); ok {
		t.Error("after repair: deleted tag still in the index")
	}
	if left, _ := idx.UnfinishedTags(ctx); len(left) != 0 {
		t.Errorf("unfinished after repair: %v", left)
	}

	// Without the sweep, the next change of the tag repairs it first. Here
	// storage says latest is m1 while the stale index says m2; deleting m2
	// must leave latest alone (it untags only tags still at m2, and after
	// the repair latest is not).
	crashHolder(t, dead, "app", "latest")
	if err := driver.PutContent(ctx, link, []byte(m1.Digest)); err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteManifest(ctx, "app", string(m2.Digest)); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := idx.Tag(ctx, "app", "latest"); d != m1.Digest {
		t.Errorf("after deleting m2: index latest = %q, want %s", d, m1.Digest)
	}
	if b, err := driver.GetContent(ctx, link); err != nil || string(b) != string(m1.Digest) {
		t.Errorf("after deleting m2: storage latest = %q, %v", b, err)
	}
	if _, ok, _ := idx.Tag(ctx, "app", "v2"); ok {
		t.Error("v2 (at m2) survived deleting m2")
	}
}

// testTwoRegistriesOneTag: two registries (as two processes) on one storage
// and one index push the same tag many times at once; storage and index
// agree at the end.
func testTwoRegistriesOneTag(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	driver := inmemory.New()
	regs := []*content.Registry{
		content.New(driver, open(t, dsn, false), content.Options{Logger: quiet}),
		content.New(driver, open(t, dsn, false), content.Options{Logger: quiet}),
	}
	var wg sync.WaitGroup
	for i, reg := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 15 {
				image(t, reg, "app", "latest", fmt.Sprintf("%d-%d", i, j))
			}
		}()
	}
	wg.Wait()
	link, err := driver.GetContent(ctx, "/docker/registry/v2/repositories/app/_manifests/tags/latest/current/link")
	if err != nil {
		t.Fatal(err)
	}
	m, err := regs[1].StatManifest(ctx, "app", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if string(link) != string(m.Digest) {
		t.Fatalf("storage says latest is %s, the index %s", link, m.Digest)
	}
}
