package cli

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The debug listener (http.debug.addr) serves pprof and expvar, and with
// http.debug.prometheus the metrics under registry:2's names, counting
// what the registry's own listener served.
func TestDebugListenerAndMetrics(t *testing.T) {
	dir := t.TempDir()
	addr, debug := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config(filepath.Join(dir, "data")))
	p := serve(t, dir, "http://"+addr, []string{
		"REGISTRY_HTTP_ADDR=" + addr,
		"REGISTRY_HTTP_DEBUG_ADDR=" + debug,
		"REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED=true",
		"REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH=/prom",
	}, cfg)

	img := newImage("metrics")
	push(t, p.base, "team/app", "v1", img)
	pull(t, p.base, "team/app", "v1", img)
	if resp, _ := do(t, http.MethodGet, p.base+"/v2/team/app/manifests/nope", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET unknown tag: %s", resp.Status)
	}
	if resp, _ := do(t, "BREW", p.base+"/v2/", "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("BREW /v2/: %s", resp.Status)
	}

	metrics := "http://" + debug + "/prom"
	// A blob GET's body is on its way before the request is recorded, so
	// wait for the last pull to be counted before reading the rest.
	text := waitMetric(t, metrics, `registry_http_requests_total{code="200",handler="blob",method="GET"}`, 2)
	for series, want := range map[string]float64{
		`registry_http_requests_total{code="202",handler="blob-upload",method="POST"}`:      2,
		`registry_http_requests_total{code="201",handler="blob-upload-chunk",method="PUT"}`: 2,
		`registry_http_requests_total{code="201",handler="manifest",method="PUT"}`:          1,
		`registry_http_requests_total{code="200",handler="manifest",method="GET"}`:          1,
		`registry_http_requests_total{code="404",handler="manifest",method="GET"}`:          1,
		`registry_http_requests_total{code="405",handler="base",method="other"}`:            1,
		`registry_http_request_duration_seconds_count{handler="manifest",method="PUT"}`:     1,
		`registry_http_request_size_bytes_sum{handler="blob-upload-chunk"}`:                 float64(len(img.config) + len(img.layer)),
		`registry_http_request_size_bytes_sum{handler="manifest"}`:                          float64(len(img.manifest)),
		`registry_http_response_size_bytes_sum{handler="blob"}`:                             float64(len(img.config) + len(img.layer)),
		`registry_http_in_flight_requests{handler="manifest"}`:                              0,
		`berth_index_building`: 0,
	} {
		if got, ok := metricValue(text, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for _, series := range []string{`berth_build_info{version=`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(text, "\n"+series) {
			t.Errorf("no %s in the metrics", series)
		}
	}
	if strings.Contains(text, "team/app") || strings.Contains(text, "sha256:") {
		t.Error("metrics carry repository names or digests as labels")
	}

	// pprof and expvar are there; the registry's own listener serves none
	// of it.
	for _, u := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/vars"} {
		resp, body := do(t, http.MethodGet, "http://"+debug+u, "", nil)
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET debug %s: %s", u, resp.Status)
		}
		if u == "/debug/vars" {
			var vars struct{ Memstats map[string]any }
			if err := json.Unmarshal(body, &vars); err != nil || vars.Memstats == nil {
				t.Errorf("/debug/vars: %v %.200s", err, body)
			}
		}
	}
	for _, u := range []string{"/prom", "/metrics", "/debug/pprof/", "/debug/vars"} {
		if resp, _ := do(t, http.MethodGet, p.base+u, "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the registry's listener: %s, want 404", u, resp.Status)
		}
	}
}

// Without http.debug.prometheus the debug listener has no metrics, and the
// registry records none.
func TestDebugListenerWithoutMetrics(t *testing.T) {
	dir := t.TempDir()
	addr, debug := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"),
		"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+filepath.Join(dir, "data")+"\nhttp:\n  addr: "+addr+"\n  debug:\n    addr: "+debug+"\n")
	p := serve(t, dir, "http://"+addr, nil, cfg)
	if resp, _ := do(t, http.MethodGet, "http://"+debug+"/debug/pprof/", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("pprof: %s", resp.Status)
	}
	if resp, _ := do(t, http.MethodGet, "http://"+debug+"/metrics", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics without prometheus enabled: %s, want 404", resp.Status)
	}
	if strings.Contains(p.log.String(), "not implemented") {
		t.Errorf("http.debug warned as not implemented:\n%s", p.log.String())
	}
}

// waitMetric scrapes u until series reaches at least want, and returns
// that scrape.
func waitMetric(t *testing.T, u, series string, want float64) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, body := do(t, http.MethodGet, u, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", u, resp.Status)
		}
		text := "\n" + string(body)
		if v, _ := metricValue(text, series); v >= want {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %v:\n%s", series, want, text)
		}
		<-tick.C
	}
}

// metricValue finds "series value" in Prometheus' text format.
func metricValue(text, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// registry:2's health section: while a check fails every request answers
// 503 UNAVAILABLE and /debug/health names the check; "/" is the liveness
// answer, 200 while healthy. health.file is the operator's switch: create
// the file to take the instance out of rotation.
func TestHealthChecks(t *testing.T) {
	dir := t.TempDir()
	addr, debug := freeAddr(t), freeAddr(t)
	down := filepath.Join(dir, "out-of-rotation")
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config(filepath.Join(dir, "data"))+
		"  file:\n    - file: "+down+"\n      interval: 20ms\n")
	p := serve(t, dir, "http://"+addr, []string{"REGISTRY_HTTP_ADDR=" + addr, "REGISTRY_HTTP_DEBUG_ADDR=" + debug}, cfg)

	status := func(u string) (int, []byte) {
		resp, body := do(t, http.MethodGet, u, "", nil)
		return resp.StatusCode, body
	}
	if code, body := status(p.base + "/"); code != http.StatusOK || len(body) != 0 {
		t.Fatalf("GET /: %d %q, want 200 and no body", code, body)
	}
	if code, body := status("http://" + debug + "/debug/health"); code != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
		t.Fatalf("/debug/health while healthy: %d %s", code, body)
	}

	if err := os.WriteFile(down, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.base+"/v2/", http.StatusServiceUnavailable)
	for _, u := range []string{p.base + "/", p.base + "/v2/team/app/manifests/v1"} {
		code, body := status(u)
		if code != http.StatusServiceUnavailable || errorCode(body) != "UNAVAILABLE" {
			t.Errorf("GET %s while unhealthy: %d %s", u, code, body)
		}
	}
	code, body := status("http://" + debug + "/debug/health")
	var failing map[string]string
	if err := json.Unmarshal(body, &failing); err != nil || code != http.StatusServiceUnavailable || failing[down] != "file exists" {
		t.Errorf("/debug/health while unhealthy: %d %s (%v)", code, body, err)
	}
	if _, ok := failing["storagedriver_filesystem"]; ok {
		t.Errorf("the storage check fails on a healthy filesystem: %s", body)
	}

	if err := os.Remove(down); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.base+"/v2/", http.StatusOK)
	push(t, p.base, "team/app", "v1", newImage("healthy again"))
}

// waitStatus polls u until it answers code.
func waitStatus(t *testing.T, u string, code int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, _ := do(t, http.MethodGet, u, "", nil)
		if resp.StatusCode == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %s, want %d", u, resp.Status, code)
		}
		<-tick.C
	}
}
