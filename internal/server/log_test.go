package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/testlog"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

type testIdentity string

func (i testIdentity) Account() string         { return string(i) }
func (i testIdentity) Can(string, string) bool { return true }

// basicAuthorizer accepts alice's password, and fails like a directory that
// is down for repositories named "broken/..." (an internal error the API
// logs).
type basicAuthorizer struct{}

func (basicAuthorizer) Authorize(r *http.Request, access []auth.Access) (auth.Identity, error) {
	for _, a := range access {
		if strings.HasPrefix(a.Name, "broken/") {
			return nil, errors.New("directory unreachable")
		}
	}
	if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == testPassword {
		return testIdentity("alice"), nil
	}
	return testIdentity(""), nil
}

const testPassword = "pw-Zq8-never-logged"

// logLines parses the JSON log, one object per line.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newLoggedServer(t *testing.T, accessLog bool) (*httptest.Server, *testlog.Buffer) {
	t.Helper()
	buf := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(context.Background(), Options{
		Driver:     inmemory.New(),
		AccessLog:  accessLog,
		Authorizer: basicAuthorizer{},
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, buf
}

func TestEveryLineOfARequestCarriesItsID(t *testing.T) {
	ts, buf := newLoggedServer(t, true)

	// An internal error: the API logs it, the middleware logs the access.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v2/broken/app/tags/list?n=10&state=opaque-query-secret", nil)
	req.SetBasicAuth("alice", testPassword)
	req.Header.Set("X-Custom-Token", "header-value-never-logged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("no X-Request-Id")
	}

	var errLine, accessLine map[string]any
	for _, l := range logLines(t, buf.String()) {
		switch l["msg"] {
		case "request failed":
			errLine = l
		case "request":
			accessLine = l
		}
	}
	if errLine == nil || accessLine == nil {
		t.Fatalf("want an error line and an access line, log:\n%s", buf.String())
	}
	if errLine["request_id"] != id || accessLine["request_id"] != id {
		t.Errorf("request ids: error line %v, access line %v, header %q", errLine["request_id"], accessLine["request_id"], id)
	}
	if accessLine["path"] != "/v2/broken/app/tags/list" {
		t.Errorf("access path %v: want the path without the query", accessLine["path"])
	}
	for _, k := range []string{"method", "path", "status", "bytes", "duration", "user"} {
		if _, ok := accessLine[k]; !ok {
			t.Errorf("access line has no %q: %v", k, accessLine)
		}
	}
	assertNoSecrets(t, buf.String())
}

func TestAccessLineNamesTheUser(t *testing.T) {
	ts, buf := newLoggedServer(t, true)
	for _, withAuth := range []bool{true, false} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v2/", nil)
		if withAuth {
			req.SetBasicAuth("alice", testPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := logLines(t, buf.String())
	var users []any
	ids := map[any]bool{}
	for _, l := range lines {
		if l["msg"] == "request" {
			users = append(users, l["user"])
			ids[l["request_id"]] = true
		}
	}
	if len(users) != 2 || users[0] != "alice" || users[1] != "" {
		t.Errorf("users in access lines = %v, want [alice \"\"]", users)
	}
	if len(ids) != 2 {
		t.Errorf("two requests share a request id: %v", ids)
	}
	assertNoSecrets(t, buf.String())
}

func TestAccessLogDisabled(t *testing.T) {
	ts, buf := newLoggedServer(t, false)
	resp, err := http.Get(ts.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id with the access log disabled")
	}
	for _, l := range logLines(t, buf.String()) {
		if l["msg"] == "request" {
			t.Errorf("access line with log.accesslog.disabled: %v", l)
		}
	}
}

func assertNoSecrets(t *testing.T, log string) {
	t.Helper()
	creds := base64.StdEncoding.EncodeToString([]byte("alice:" + testPassword))
	for _, s := range []string{testPassword, creds, "Basic ", "opaque-query-secret", "header-value-never-logged"} {
		if strings.Contains(log, s) {
			t.Errorf("log contains %q:\n%s", s, log)
		}
	}
}

// undeletable is a storage driver whose deletes fail, so the content layer
// logs a warning in the middle of a request.
type undeletable struct{ storage.Driver }

func (undeletable) Delete(context.Context, string) error { return errors.New("disk on fire") }

// Lines the content layer logs during a request carry the request's id too.
func TestContentLinesCarryTheRequestID(t *testing.T) {
	buf := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	srv, err := New(context.Background(), Options{Driver: undeletable{inmemory.New()}, AccessLog: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	resp, err := http.Post(ts.URL+"/v2/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	// A wrong digest: the upload is rejected and its removal fails.
	req, _ := http.NewRequest(http.MethodPut, ts.URL+loc+sep+"digest=sha256:"+strings.Repeat("0", 64), strings.NewReader("data"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT with a wrong digest: %s", resp.Status)
	}
	id := resp.Header.Get("X-Request-Id")
	var warned bool
	for _, l := range logLines(t, buf.String()) {
		if l["msg"] == "cannot remove rejected upload" {
			warned = true
			if l["request_id"] != id {
				t.Errorf("content warning has request_id %v, want %q", l["request_id"], id)
			}
		}
	}
	if !warned {
		t.Fatalf("no content warning logged:\n%s", buf.String())
	}
}
