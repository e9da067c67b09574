package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// notifications.endpoints from registry:2's config.yml: a push reaches the
// receiver with the configured header, a disabled endpoint gets nothing,
// and the header's value is never logged.
func TestNotificationsFromConfig(t *testing.T) {
	type delivery struct {
		auth string
		body map[string][]map[string]any
	}
	got := make(chan delivery, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		d.auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&d.body); err != nil {
			t.Errorf("receiver: %v", err)
		}
		got <- d
	}))
	defer receiver.Close()
	disabled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the disabled endpoint got %s %s", r.Method, r.URL)
	}))
	defer disabled.Close()

	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config(filepath.Join(dir, "data"))+`notifications:
  endpoints:
    - name: ci
      url: `+receiver.URL+`/hook
      headers:
        Authorization: [Bearer hook-s3cret]
      timeout: 2s
      threshold: 3
      backoff: 10ms
      ignoredmediatypes: [application/octet-stream]
    - name: off
      url: `+disabled.URL+`
      disabled: true
`)
	p := serve(t, dir, "http://"+addr, []string{"REGISTRY_HTTP_ADDR=" + addr}, cfg)
	push(t, p.base, "team/app", "v1", newImage("notify"))

	// Blob events are ignored by media type: the first delivery is the
	// manifest's.
	d := <-got
	if d.auth != "Bearer hook-s3cret" || len(d.body["events"]) != 1 {
		t.Fatalf("delivery %+v", d)
	}
	ev := d.body["events"][0]
	target, _ := ev["target"].(map[string]any)
	if ev["action"] != "push" || target["tag"] != "v1" || target["repository"] != "team/app" ||
		!strings.HasPrefix(target["url"].(string), p.base+"/v2/team/app/manifests/sha256:") {
		t.Errorf("event %v", ev)
	}
	p.stopClean(t)
	log := p.log.String()
	if strings.Contains(log, "hook-s3cret") {
		t.Errorf("the endpoint's header value was logged:\n%s", log)
	}
	if !strings.Contains(log, "notifications endpoint configured") || strings.Contains(log, "notifications: registry:2 setting not implemented") {
		t.Errorf("log:\n%s", log)
	}
}
