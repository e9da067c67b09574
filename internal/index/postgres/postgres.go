// Package postgres keeps berth's metadata index (repositories, tags,
// manifest records, referrers) in PostgreSQL, so that several berth
// processes serving one storage bucket share one index.
//
// Storage stays the single source of truth: every change is written to
// storage first and to the index second, and the index can be rebuilt from
// storage at any time (content.Registry.Rebuild). What PostgreSQL adds over
// the embedded index:
//
//   - the schema is created and migrated on open, in one transaction under an
//     advisory lock, so instances starting together do not race;
//   - a meta row records when the index was last built from storage, so the
//     first writable instance over an existing tree (a registry:2 bucket)
//     builds it once (EnsureBuilt), and later starts do not;
//   - tag changes are serialised across processes with advisory locks
//     (content.TagLocker), and a change cut short by a crash or a failed
//     index write is noticed and repaired from storage;
//   - a read-only instance (storage.maintenance.readonly) opens the index
//     with ReadOnly and never writes to it: no migration, no locks, no
//     rebuild. It can use a role with SELECT rights only, or a hot standby.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
)

// Advisory lock keys (pg_advisory_lock's bigint space is shared by every
// application on the database; these are "berth" in ASCII plus a suffix).
const (
	lockMigrate int64 = 0x6265727468_0001
	lockBuild   int64 = 0x6265727468_0002
)

// migrations[i] takes the schema from version i to i+1. Never edit one that
// has shipped: append.
var migrations = []string{
	// 1: the index. Names sort byte-wise (COLLATE "C"), as the embedded
	// index and distribution do, whatever the database's locale.
	`
CREATE TABLE berth_repositories (
	name text COLLATE "C" PRIMARY KEY
);
CREATE TABLE berth_manifests (
	repo          text COLLATE "C" NOT NULL REFERENCES berth_repositories (name) ON DELETE CASCADE,
	digest        text COLLATE "C" NOT NULL,
	media_type    text NOT NULL,
	size          bigint NOT NULL,
	artifact_type text NOT NULL DEFAULT '',
	subject       text COLLATE "C" NOT NULL DEFAULT '',
	annotations   jsonb,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX berth_manifests_referrers ON berth_manifests (repo, subject, digest) WHERE subject <> '';
CREATE TABLE berth_tags (
	repo   text COLLATE "C" NOT NULL REFERENCES berth_repositories (name) ON DELETE CASCADE,
	name   text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	PRIMARY KEY (repo, name)
);
CREATE INDEX berth_tags_digest ON berth_tags (repo, digest);
-- A tag change in progress, from LockTag to unlock. A row whose holder
-- is gone marks a change cut short.
CREATE TABLE berth_tag_changes (
	repo    text NOT NULL,
	tag     text NOT NULL,
	holder  text NOT NULL,
	started timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (repo, tag)
);
`,
}

// SchemaVersion is the schema version this berth writes and reads.
var SchemaVersion = len(migrations)

// Options configure Open.
type Options struct {
	// DSN is a PostgreSQL connection string, as a URL
	// (postgres://user:pass@host:5432/db?sslmode=disable) or in key=value
	// form. PG* environment variables fill in what it leaves out.
	DSN string
	// ReadOnly opens the index for reading only: the schema must already
	// be current (a writable instance creates and migrates it), and
	// nothing is ever written.
	ReadOnly bool
	// MaxConns bounds connections for queries; 0 means 10. Tag locks use a
	// second pool of the same size, so a process holds at most twice this.
	MaxConns int32
	Logger   *slog.Logger
}

// Index is a content.Index in PostgreSQL.
type Index struct {
	pool     *pgxpool.Pool
	locks    *pgxpool.Pool // connections holding tag locks
	readOnly bool
	log      *slog.Logger
}

var (
	_ content.Index     = (*Index)(nil)
	_ content.TagLocker = (*Index)(nil)
)

// Open connects, then (unless ReadOnly) creates or migrates the schema.
func Open(ctx context.Context, opts Options) (*Index, error) {
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("index postgres: parse dsn: %s", redactErr(err))
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "berth"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("index postgres: %w", err)
	}
	x := &Index{pool: pool, readOnly: opts.ReadOnly, log: log}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("index postgres: connect to %s: %w", describe(cfg.ConnConfig), err)
	}
	if opts.ReadOnly {
		err = x.checkSchema(ctx)
	} else {
		err = x.migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		x.locks, err = pgxpool.NewWithConfig(ctx, cfg.Copy())
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("index postgres: %w", err)
		}
	}
	return x, nil
}

func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s as %s", c.Host, c.Port, c.Database, c.User)
}

// redactErr keeps a DSN parse error from echoing a password.
func redactErr(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "invalid connection string"
	}
	return err.Error()
}

// Close closes every connection. Locks held by this process are released
// by the server when their connections end. A connection still in use (a
// request that outlived shutdown) is waited for at most closeTimeout.
func (x *Index) Close() error {
	done := make(chan struct{})
	go func() {
		if x.locks != nil {
			x.locks.Close()
		}
		x.pool.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("index postgres: connections still in use after %v; closing anyway", closeTimeout)
	}
}

const closeTimeout = 10 * time.Second

// ReadOnly reports whether the index was opened read-only.
func (x *Index) ReadOnly() bool { return x.readOnly }

func (x *Index) migrate(ctx context.Context) error {
	tx, err := x.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("index postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
		return fmt.Errorf("index postgres: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS berth_meta (key text PRIMARY KEY, value text NOT NULL)`); err != nil {
		return fmt.Errorf("index postgres: migrate: %w", err)
	}
	have, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if have > SchemaVersion {
		return fmt.Errorf("index postgres: the database has schema version %d, newer than this berth's %d: upgrade berth", have, SchemaVersion)
	}
	for v := have; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("index postgres: migrate to schema version %d: %w", v+1, err)
		}
	}
	if have == SchemaVersion {
		return nil // nothing to commit
	}
	if _, err := tx.Exec(ctx, `INSERT INTO berth_meta (key, value) VALUES ('schema_version', $1)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, strconv.Itoa(SchemaVersion)); err != nil {
		return fmt.Errorf("index postgres: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("index postgres: migrate: %w", err)
	}
	x.log.Info("index schema migrated", "from", have, "to", SchemaVersion)
	return nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var s string
	err := q.QueryRow(ctx, `SELECT value FROM berth_meta WHERE key = 'schema_version'`).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("index postgres: read schema version: %w", err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("index postgres: schema version %q is not a number", s)
	}
	return v, nil
}

// checkSchema is the read-only open: the schema must be there and current.
func (x *Index) checkSchema(ctx context.Context) error {
	have, err := schemaVersion(ctx, x.pool)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		have, err = 0, nil
	}
	if err != nil {
		return err
	}
	switch {
	case have == 0:
		return errors.New("index postgres: the database has no berth index yet, and a read-only instance does not create one: start a writable berth on it first (or run `berth index rebuild`)")
	case have < SchemaVersion:
		return fmt.Errorf("index postgres: the database has schema version %d and this berth needs %d; a read-only instance does not migrate: start a writable berth of this version first", have, SchemaVersion)
	case have > SchemaVersion:
		return fmt.Errorf("index postgres: the database has schema version %d, newer than this berth's %d: upgrade berth", have, SchemaVersion)
	}
	return nil
}

// Built reports whether the index was ever built from storage (Replace
// succeeded at least once), and when.
func (x *Index) Built(ctx context.Context) (bool, time.Time, error) {
	var s string
	err := x.pool.QueryRow(ctx, `SELECT value FROM berth_meta WHERE key = 'built_at'`).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("index postgres: %w", err)
	}
	at, _ := time.Parse(time.RFC3339Nano, s)
	return true, at, nil
}

// EnsureBuilt runs build (which must end in Replace) unless the index was
// built before. Instances starting together take turns under an advisory
// lock: one builds, the others wait for it and then find the index built.
// It reports whether build ran here.
func (x *Index) EnsureBuilt(ctx context.Context, build func(context.Context) error) (bool, error) {
	if x.readOnly {
		return false, errors.New("index postgres: read-only")
	}
	if built, _, err := x.Built(ctx); err != nil || built {
		return false, err
	}
	// From the lock pool: build's own queries need the query pool, which
	// may have a single connection.
	conn, err := x.locks.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("index postgres: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockBuild); err != nil {
		discard(conn)
		return false, fmt.Errorf("index postgres: wait for the build lock: %w", err)
	}
	defer unlockSession(conn, lockBuild)
	built, _, err := x.Built(ctx)
	if err != nil || built {
		return false, err
	}
	if err := build(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// unlockSession releases a session advisory lock and gives the connection
// back; if that fails the connection is closed, which releases the lock.
func unlockSession(conn *pgxpool.Conn, key int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		discard(conn)
		return
	}
	conn.Release()
}

// discard closes a connection instead of returning it to the pool: its
// session state (a lock that may or may not be held) is unknown.
func discard(conn *pgxpool.Conn) {
	c := conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

func (x *Index) writable() error {
	if x.readOnly {
		return errors.New("index postgres: opened read-only")
	}
	return nil
}

// ensureRepo creates the repository row, or locks it against a concurrent
// Replace deleting it (DO UPDATE takes the row lock; DO NOTHING would not,
// and the insert that follows could then lose its parent row).
const ensureRepo = `INSERT INTO berth_repositories (name) VALUES ($1)
	ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name`

const upsertManifest = `INSERT INTO berth_manifests (repo, digest, media_type, size, artifact_type, subject, annotations)
	VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (repo, digest) DO UPDATE SET media_type = EXCLUDED.media_type, size = EXCLUDED.size,
		artifact_type = EXCLUDED.artifact_type, subject = EXCLUDED.subject, annotations = EXCLUDED.annotations`

func annotations(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

func (x *Index) PutManifest(ctx context.Context, repo string, rec content.ManifestRecord) error {
	if err := x.writable(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureRepo, repo); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, upsertManifest, repo, string(rec.Digest), rec.MediaType, rec.Size,
			rec.ArtifactType, string(rec.Subject), annotations(rec.Annotations))
		return err
	})
	if err != nil {
		return fmt.Errorf("index put manifest %s@%s: %w", repo, rec.Digest, err)
	}
	return nil
}

func (x *Index) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if err := x.writable(); err != nil {
		return err
	}
	// The repository stays, as its directory does in storage: its tag
	// list answers (empty), as the OCI conformance suite expects.
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM berth_tags WHERE repo = $1 AND digest = $2`, repo, string(d)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM berth_manifests WHERE repo = $1 AND digest = $2`, repo, string(d))
		return err
	})
	if err != nil {
		return fmt.Errorf("index delete manifest %s@%s: %w", repo, d, err)
	}
	return nil
}

const manifestColumns = `digest, media_type, size, artifact_type, subject, annotations`

func scanManifest(row pgx.Row) (content.ManifestRecord, error) {
	var rec content.ManifestRecord
	var d, subject string
	var ann map[string]string
	if err := row.Scan(&d, &rec.MediaType, &rec.Size, &rec.ArtifactType, &subject, &ann); err != nil {
		return rec, err
	}
	rec.Digest, rec.Subject = digest.Digest(d), digest.Digest(subject)
	if len(ann) > 0 {
		rec.Annotations = ann
	}
	return rec, nil
}

func (x *Index) Manifest(ctx context.Context, repo string, d digest.Digest) (content.ManifestRecord, bool, error) {
	rec, err := scanManifest(x.pool.QueryRow(ctx, `SELECT `+manifestColumns+` FROM berth_manifests
		WHERE repo = $1 AND digest = $2`, repo, string(d)))
	if errors.Is(err, pgx.ErrNoRows) {
		return content.ManifestRecord{}, false, nil
	}
	if err != nil {
		return content.ManifestRecord{}, false, fmt.Errorf("index manifest %s@%s: %w", repo, d, err)
	}
	return rec, true, nil
}

func (x *Index) PutTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	if err := x.writable(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureRepo, repo); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO berth_tags (repo, name, digest) VALUES ($1, $2, $3)
			ON CONFLICT (repo, name) DO UPDATE SET digest = EXCLUDED.digest`, repo, tag, string(d))
		return err
	})
	if err != nil {
		return fmt.Errorf("index put tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

func (x *Index) DeleteTag(ctx context.Context, repo, tag string) error {
	if err := x.writable(); err != nil {
		return err
	}
	if _, err := x.pool.Exec(ctx, `DELETE FROM berth_tags WHERE repo = $1 AND name = $2`, repo, tag); err != nil {
		return fmt.Errorf("index delete tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

func (x *Index) Tag(ctx context.Context, repo, tag string) (digest.Digest, bool, error) {
	var d string
	err := x.pool.QueryRow(ctx, `SELECT digest FROM berth_tags WHERE repo = $1 AND name = $2`, repo, tag).Scan(&d)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("index tag %s:%s: %w", repo, tag, err)
	}
	return digest.Digest(d), true, nil
}

// limit turns n (< 0: all) into a LIMIT argument (NULL: no limit).
func limit(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}

func (x *Index) Tags(ctx context.Context, repo, last string, n int) ([]content.Tag, error) {
	if n == 0 {
		return nil, nil
	}
	rows, err := x.pool.Query(ctx, `SELECT name, digest FROM berth_tags
		WHERE repo = $1 AND name > $2 ORDER BY name LIMIT $3`, repo, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("index tags %s: %w", repo, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (content.Tag, error) {
		var t content.Tag
		var d string
		err := row.Scan(&t.Name, &d)
		t.Digest = digest.Digest(d)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("index tags %s: %w", repo, err)
	}
	return out, nil
}

func (x *Index) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	rows, err := x.pool.Query(ctx, `SELECT name FROM berth_repositories
		WHERE name > $1 ORDER BY name LIMIT $2`, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("index repositories: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("index repositories: %w", err)
	}
	return out, nil
}

func (x *Index) HasRepository(ctx context.Context, repo string) (bool, error) {
	var found bool
	err := x.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM berth_repositories WHERE name = $1)`, repo).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("index repository %s: %w", repo, err)
	}
	return found, nil
}

func (x *Index) Referrers(ctx context.Context, repo string, d digest.Digest) ([]content.ManifestRecord, error) {
	rows, err := x.pool.Query(ctx, `SELECT `+manifestColumns+` FROM berth_manifests
		WHERE repo = $1 AND subject = $2 AND subject <> '' ORDER BY digest`, repo, string(d))
	if err != nil {
		return nil, fmt.Errorf("index referrers %s@%s: %w", repo, d, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (content.ManifestRecord, error) {
		return scanManifest(row)
	})
	if err != nil {
		return nil, fmt.Errorf("index referrers %s@%s: %w", repo, d, err)
	}
	return out, nil
}

// Replace swaps the index for the snapshot in one transaction and records
// that the index is built. Readers see the old index until it commits.
func (x *Index) Replace(ctx context.Context, repos iter.Seq2[content.RepositorySnapshot, error]) error {
	if err := x.writable(); err != nil {
		return err
	}
	// The rows are gathered first: the three COPYs and the deletes before
	// them run in one transaction, which other instances keep reading the
	// old rows through until it commits.
	var repoRows, manifestRows, tagRows [][]any
	for r, err := range repos {
		if err != nil {
			return fmt.Errorf("index replace: %w", err)
		}
		// A repository without manifests (all deleted) is kept: its
		// directory is still in storage.
		repoRows = append(repoRows, []any{r.Name})
		seen := make(map[digest.Digest]bool, len(r.Manifests))
		for _, m := range r.Manifests {
			if seen[m.Digest] {
				continue
			}
			seen[m.Digest] = true
			manifestRows = append(manifestRows, []any{r.Name, string(m.Digest), m.MediaType, m.Size,
				m.ArtifactType, string(m.Subject), annotations(m.Annotations)})
		}
		for _, t := range r.Tags {
			tagRows = append(tagRows, []any{r.Name, t.Name, string(t.Digest)})
		}
	}
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		// DELETE rather than TRUNCATE: readers keep reading the old rows
		// until commit instead of waiting for the whole rebuild.
		for _, q := range []string{`DELETE FROM berth_tags`, `DELETE FROM berth_manifests`, `DELETE FROM berth_repositories`} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"berth_repositories"}, []string{"name"}, pgx.CopyFromRows(repoRows)); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"berth_manifests"},
			[]string{"repo", "digest", "media_type", "size", "artifact_type", "subject", "annotations"},
			pgx.CopyFromRows(manifestRows)); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"berth_tags"}, []string{"repo", "name", "digest"}, pgx.CopyFromRows(tagRows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO berth_meta (key, value) VALUES ('built_at', $1)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, time.Now().UTC().Format(time.RFC3339Nano))
		return err
	})
	if err != nil {
		return fmt.Errorf("index replace: %w", err)
	}
	return nil
}

// LockTag takes a session advisory lock for the tag on a connection of the
// lock pool, so the lock ends with the process (or its connection) and
// never outlives a crash, and notes the change in berth_tag_changes, which
// does outlive one.
func (x *Index) LockTag(ctx context.Context, repo, tag string) (func(finished bool), bool, error) {
	if err := x.writable(); err != nil {
		return nil, false, err
	}
	conn, err := x.locks.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("index lock tag %s:%s: %w", repo, tag, err)
	}
	key := "berth tag " + repo + ":" + tag // neither names nor tags hold ':'

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, key); err != nil {
		discard(conn) // cancelled while waiting: the lock may or may not be ours
		return nil, false, fmt.Errorf("index lock tag %s:%s: %w", repo, tag, err)
	}
	holder := newHolder()
	var unfinished bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM berth_tag_changes WHERE repo = $1 AND tag = $2)`, repo, tag).Scan(&unfinished)
	if err == nil {
		_, err = conn.Exec(ctx, `INSERT INTO berth_tag_changes (repo, tag, holder) VALUES ($1, $2, $3)
			ON CONFLICT (repo, tag) DO UPDATE SET holder = EXCLUDED.holder, started = now()`, repo, tag, holder)
	}
	if err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("index lock tag %s:%s: %w", repo, tag, err)
	}
	unlock := func(finished bool) {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !finished {
			// The note stays: the next holder re-reads the tag from storage.
		} else if _, err := conn.Exec(uctx, `DELETE FROM berth_tag_changes WHERE repo = $1 AND tag = $2 AND holder = $3`, repo, tag, holder); err != nil {
			x.log.Warn("index: could not clear a finished tag change; it will be re-read from storage", "repo", repo, "tag", tag, "err", err)
			discard(conn)
			return
		}
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); err != nil {
			discard(conn)
			return
		}
		conn.Release()
	}
	return unlock, unfinished, nil
}

// UnfinishedTags lists the tags with a change noted in berth_tag_changes:
// those cut short by a crash or a failure, and any in progress right now
// (harmless to repair: LockTag waits for them and then finds them finished).
func (x *Index) UnfinishedTags(ctx context.Context) ([]content.RepoTag, error) {
	rows, err := x.pool.Query(ctx, `SELECT repo, tag FROM berth_tag_changes ORDER BY repo, tag`)
	if err != nil {
		return nil, fmt.Errorf("index unfinished tags: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[content.RepoTag])
	if err != nil {
		return nil, fmt.Errorf("index unfinished tags: %w", err)
	}
	return out, nil
}

func newHolder() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
