package harness

import (
	"net/http"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestParseLogLine(t *testing.T) {
	line := `time=2026-11-22T21:02:42.591Z level=INFO msg=request request_id=6f91 method=GET path=/v2/a/b/tags/list status=200 bytes=2 duration=11.577µs remote=127.0.0.1:40384 err="a \"quoted\" = value"`
	got := ParseLogLine(line)
	want := map[string]string{
		"msg":    "request",
		"method": "GET",
		"path":   "/v2/a/b/tags/list",
		"status": "200",
		"bytes":  "2",
		"remote": "127.0.0.1:40384",
		"err":    `a "quoted" = value`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if m := ParseLogLine(`msg="index built" repositories=0`); m["msg"] != "index built" || m["repositories"] != "0" {
		t.Errorf("quoted msg: %v", m)
	}
}

// TestStartKillRestart starts berth, sees its access line, SIGKILLs it and
// restarts it on the same address and root with the log appended.
func TestStartKillRestart(t *testing.T) {
	b := Start(t, Options{})
	get := func() int {
		t.Helper()
		resp, err := http.Get(b.URL() + "/v2/_catalog")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(); st != http.StatusOK {
		t.Fatalf("GET /v2/_catalog: %d", st)
	}
	r := b.WaitRequest(t, 0, ReadyTimeout, "GET /v2/_catalog", func(r Request) bool {
		return r.Method == http.MethodGet && r.Path == "/v2/_catalog"
	})
	if r.Status != http.StatusOK {
		t.Errorf("logged %v", r)
	}
	mark := len(b.Requests(t))
	pid := b.Pid()
	b.Kill(t)
	if b.Running() {
		t.Fatal("still running after Kill")
	}
	b.Restart(t)
	if b.Pid() == pid || b.Pid() == 0 {
		t.Fatalf("restart kept pid %d / has none", pid)
	}
	if st := get(); st != http.StatusOK {
		t.Fatalf("GET /v2/_catalog after restart: %d", st)
	}
	b.WaitRequest(t, mark, ReadyTimeout, "GET /v2/_catalog after restart", func(r Request) bool {
		return r.Method == http.MethodGet && r.Path == "/v2/_catalog"
	})
	if n := len(b.Requests(t)); n <= mark {
		t.Errorf("log has %d access lines after restart, had %d before", n, mark)
	}
}
