package health

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A check fails after Threshold failures in a row and passes again after
// one success; the monitor is healthy only while every check passes.
func TestThresholds(t *testing.T) {
	var results []error // what the next runs of "flaky" return
	flaky := func(context.Context) error {
		err := results[0]
		results = results[1:]
		return err
	}
	down := errors.New("backend down")
	m := New([]Check{
		{Name: "flaky", Threshold: 3, Run: flaky},
		{Name: "steady", Run: func(context.Context) error { return nil }},
	})
	ctx := context.Background()
	results = []error{down, down, nil, down, down, down, nil}
	for i, want := range []bool{true, true, true, true, true, false, true} {
		m.RunCheck(ctx, 0)
		m.RunCheck(ctx, 1)
		if got := m.Healthy(); got != want {
			t.Fatalf("after run %d: healthy %v, want %v (failing %v)", i+1, got, want, m.Failing())
		}
		if !want && m.Failing()["flaky"] != "backend down" {
			t.Fatalf("failing = %v", m.Failing())
		}
	}
	if len(m.Failing()) != 0 {
		t.Fatalf("failing after a success: %v", m.Failing())
	}

	// Threshold 0 is registry:2's default: the first failure counts.
	once := New([]Check{{Name: "once", Run: func(context.Context) error { return down }}})
	once.RunCheck(ctx, 0)
	if once.Healthy() {
		t.Fatal("threshold 0: still healthy after a failure")
	}
}

func TestHandler(t *testing.T) {
	fail := true
	m := New([]Check{{Name: "file:/down", Run: func(context.Context) error {
		if fail {
			return errors.New("file exists")
		}
		return nil
	}}})
	get := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/health", nil))
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		return rec.Code, body
	}
	if code, body := get(); code != http.StatusOK || len(body) != 0 {
		t.Fatalf("before any run: %d %v", code, body)
	}
	m.RunCheck(context.Background(), 0)
	if code, body := get(); code != http.StatusServiceUnavailable || body["file:/down"] != "file exists" {
		t.Fatalf("failing: %d %v", code, body)
	}
	fail = false
	m.RunCheck(context.Background(), 0)
	if code, body := get(); code != http.StatusOK || len(body) != 0 {
		t.Fatalf("recovered: %d %v", code, body)
	}
}

func TestFileCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out-of-rotation")
	check := FileCheck(p)
	if err := check(context.Background()); err != nil {
		t.Fatalf("no file: %v", err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := check(context.Background()); err == nil {
		t.Fatal("file exists, check passes")
	}
}

func TestHTTPCheck(t *testing.T) {
	status := http.StatusOK
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || r.Header.Get("Authorization") != "Basic abc" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
	}))
	defer ts.Close()
	hdr := http.Header{"authorization": {"Basic abc"}} // keys as written in YAML
	ctx := context.Background()
	if err := HTTPCheck(ts.URL, hdr, 0, 0)(ctx); err != nil {
		t.Fatalf("200 expected by default: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := HTTPCheck(ts.URL, hdr, 0, 0)(ctx); err == nil {
		t.Fatal("503 passed")
	}
	if err := HTTPCheck(ts.URL, hdr, http.StatusServiceUnavailable, 0)(ctx); err != nil {
		t.Fatalf("statuscode 503 configured: %v", err)
	}
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := TCPCheck(addr, 0)(context.Background()); err != nil {
		t.Fatalf("listening: %v", err)
	}
	ln.Close()
	if err := TCPCheck(addr, 0)(context.Background()); err == nil {
		t.Fatal("closed port passes")
	}
}

// Start runs every check at once and then every Interval; stop ends the
// goroutines and waits for them.
func TestStartStop(t *testing.T) {
	second := make(chan struct{})
	runs := 0
	m := New([]Check{{Name: "down", Interval: time.Millisecond, Run: func(context.Context) error {
		runs++
		if runs == 2 { // the first run's result is recorded by now
			close(second)
		}
		return errors.New("down")
	}}})
	stop := m.Start(context.Background())
	<-second
	stop()
	if m.Healthy() {
		t.Fatal("the check ran and failed, yet healthy")
	}
	n := runs
	if n < 2 {
		t.Fatalf("%d runs", n)
	}
}
