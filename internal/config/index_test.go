package config

import (
	"strings"
	"testing"
)

func TestBerthIndexPostgres(t *testing.T) {
	c := mustLoad(t, "berth:\n  index:\n    postgres:\n      dsn: postgres://berth:s3cret@db:5432/berth\n      maxconns: 20\n")
	pg := c.Berth.Index.Postgres
	if pg == nil || pg.DSN != "postgres://berth:s3cret@db:5432/berth" || pg.MaxConns != 20 {
		t.Fatalf("postgres = %+v", pg)
	}
	if len(c.Unimplemented()) != 0 {
		t.Errorf("unimplemented: %v", c.Unimplemented())
	}

	// The environment sets it too, as in a container.
	c = mustLoad(t, "", "REGISTRY_BERTH_INDEX_POSTGRES_DSN=host=db user=berth password=x dbname=berth")
	if pg := c.Berth.Index.Postgres; pg == nil || pg.DSN != "host=db user=berth password=x dbname=berth" {
		t.Fatalf("postgres from env = %+v", pg)
	}
	if c.Berth.Index.Postgres == nil {
		t.Fatal("no postgres")
	}

	// Without it the embedded index is used.
	if c := mustLoad(t, ""); c.Berth.Index.Postgres != nil {
		t.Errorf("postgres by default: %+v", c.Berth.Index.Postgres)
	}
}

func TestBerthIndexPostgresErrors(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"berth:\n  index:\n    postgres:\n      dsn: ''\n", "berth.index.postgres.dsn: must not be empty"},
		{"berth:\n  index:\n    postgres:\n      dsn: postgres://db/x\n      maxconns: -1\n", "berth.index.postgres.maxconns: must not be negative"},
		{"berth:\n  index:\n    path: /x/index.db\n    postgres:\n      dsn: postgres://db/x\n", "berth.index.path: the embedded index is not used with berth.index.postgres"},
		{"berth:\n  index:\n    postgres:\n      url: postgres://db/x\n", "url"},
	} {
		_, err := load(t, tt.file)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.file, err, tt.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://berth:s3cret@db:5432/berth?sslmode=disable":          "postgres://berth:<redacted>@db:5432/berth?sslmode=disable",
		"postgres://db/berth?user=berth&password=s3cret&sslmode=require": "postgres://db/berth?user=berth&password=<redacted>&sslmode=require",
		"postgres://db/berth":                             "postgres://db/berth",
		"host=db user=berth password=s3cret dbname=berth": "host=db user=berth password=<redacted> dbname=berth",
		"host=db password = 's3 \\' cret' dbname=berth":   "host=db password = <redacted> dbname=berth",
		"host=db dbname=berth":                            "host=db dbname=berth",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	c := mustLoad(t, "berth:\n  index:\n    postgres:\n      dsn: host=db password=s3cret\n")
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "password=<redacted>") {
		t.Errorf("redacted config:\n%s", out)
	}
}
