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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/auth/setup"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/notify"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// Notifications through the whole server: a push, pulls, a mount and
// deletes by an htpasswd user reach the receiver as registry:2's events,
// in order, and HEAD requests send none.
func TestNotificationsEndToEnd(t *testing.T) {
	type received struct {
		contentType string
		event       notify.Event
	}
	events := make(chan received, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env notify.Envelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			t.Errorf("receiver: %v", err)
		}
		for _, ev := range env.Events {
			events <- received{r.Header.Get("Content-Type"), ev}
		}
	}))
	defer receiver.Close()
	next := func() notify.Event { // waits: delivery order is the test's clock
		t.Helper()
		got := <-events
		if got.contentType != notify.MediaType {
			t.Errorf("Content-Type %q", got.contentType)
		}
		return got.event
	}

	n, err := notify.New(notify.Options{
		Endpoints:         []notify.Endpoint{{Name: "ci", URL: receiver.URL, Backoff: time.Millisecond}},
		IncludeReferences: true,
		SourceAddr:        "registry-1:5000",
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	access := htpasswdAuth(t, "alice", "secret")
	m := metrics.New("test")
	srv, err := New(context.Background(), Options{
		Driver: inmemory.New(), DeleteEnabled: true, Authorizer: access.Authorizer, Handlers: access.Handlers,
		Notifier: n, Metrics: m, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	do := func(method, path string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("alice", "secret")
		req.Header.Set("User-Agent", "notify-test/1.0")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		return resp
	}

	// Push: the config monolithically, the layer in chunks, the manifest
	// by tag.
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("layer bytes "), 1000)
	cfgDigest, layerDigest := digest.FromBytes(config), digest.FromBytes(layer)
	do("POST", "/v2/team/app/blobs/uploads/?digest="+string(cfgDigest), config)
	loc := do("POST", "/v2/team/app/blobs/uploads/", nil).Header.Get("Location")
	loc = do("PATCH", loc, layer[:5000], "Content-Type", "application/octet-stream").Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	do("PUT", loc+sep+"digest="+string(layerDigest), layer[5000:])
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cfgDigest, len(config), layerDigest, len(layer)))
	mDigest := digest.FromBytes(manifest)
	putResp := do("PUT", "/v2/team/app/manifests/v1", manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")

	for _, b := range []struct {
		d    digest.Digest
		size int
	}{{cfgDigest, len(config)}, {layerDigest, len(layer)}} {
		ev := next()
		if ev.Action != "push" || ev.Target.Digest != string(b.d) || ev.Target.Size != int64(b.size) || ev.Target.Length != int64(b.size) ||
			ev.Target.MediaType != "application/octet-stream" || ev.Target.Repository != "team/app" ||
			ev.Target.URL != ts.URL+"/v2/team/app/blobs/"+string(b.d) || ev.Actor.Name != "alice" {
			t.Errorf("blob push event %+v", ev)
		}
	}
	ev := next()
	want := notify.Target{
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(manifest)), Length: int64(len(manifest)),
		Digest: string(mDigest), Repository: "team/app", URL: ts.URL + "/v2/team/app/manifests/" + string(mDigest), Tag: "v1",
		References: []notify.Descriptor{
			{MediaType: "application/vnd.oci.image.config.v1+json", Digest: string(cfgDigest), Size: int64(len(config))},
			{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: string(layerDigest), Size: int64(len(layer))},
		},
	}
	if ev.Action != "push" || !sameJSON(t, ev.Target, want) {
		t.Errorf("manifest push:\n%+v\nwant\n%+v", ev.Target, want)
	}
	host := strings.TrimPrefix(ts.URL, "http://")
	if ev.Actor.Name != "alice" || ev.Request.UserAgent != "notify-test/1.0" || ev.Request.Method != "PUT" ||
		ev.Request.Host != host || ev.Request.ID == "" || ev.Request.ID != putResp.Header.Get("X-Request-Id") ||
		!strings.HasPrefix(ev.Request.Addr, "127.0.0.1:") || ev.Source.Addr != "registry-1:5000" || ev.Source.InstanceID == "" {
		t.Errorf("manifest push: actor %+v request %+v source %+v (X-Request-Id %q)", ev.Actor, ev.Request, ev.Source, putResp.Header.Get("X-Request-Id"))
	}

	// HEAD sends nothing: the event after a HEAD and a GET is the GET's.
	do("HEAD", "/v2/team/app/manifests/v1", nil)
	do("GET", "/v2/team/app/manifests/v1", nil)
	if ev := next(); ev.Action != "pull" || ev.Target.Tag != "v1" || ev.Target.Digest != string(mDigest) || ev.Request.Method != "GET" || len(ev.Target.References) != 2 {
		t.Errorf("manifest pull %+v", ev)
	}
	do("HEAD", "/v2/team/app/blobs/"+string(layerDigest), nil)
	do("GET", "/v2/team/app/blobs/"+string(layerDigest), nil)
	if ev := next(); ev.Action != "pull" || ev.Target.Digest != string(layerDigest) || ev.Target.Size != int64(len(layer)) || ev.Request.Method != "GET" {
		t.Errorf("blob pull %+v", ev)
	}
	do("GET", "/v2/team/app/manifests/"+string(mDigest), nil)
	if ev := next(); ev.Action != "pull" || ev.Target.Tag != "" || ev.Target.Digest != string(mDigest) {
		t.Errorf("manifest pull by digest %+v", ev)
	}

	do("POST", "/v2/team/other/blobs/uploads/?mount="+string(layerDigest)+"&from=team/app", nil)
	if ev := next(); ev.Action != "mount" || ev.Target.Repository != "team/other" || ev.Target.FromRepository != "team/app" ||
		ev.Target.Digest != string(layerDigest) || ev.Target.Size != int64(len(layer)) {
		t.Errorf("mount %+v", ev)
	}

	// Deletes: a tag, a revision, a blob.
	do("DELETE", "/v2/team/app/manifests/v1", nil)
	if ev := next(); ev.Action != "delete" || !sameJSON(t, ev.Target, notify.Target{Repository: "team/app", Tag: "v1"}) {
		t.Errorf("tag delete %+v", ev)
	}
	do("DELETE", "/v2/team/app/manifests/"+string(mDigest), nil)
	if ev := next(); ev.Action != "delete" || !sameJSON(t, ev.Target, notify.Target{Repository: "team/app", Digest: string(mDigest)}) {
		t.Errorf("manifest delete %+v", ev)
	}
	do("DELETE", "/v2/team/app/blobs/"+string(cfgDigest), nil)
	if ev := next(); ev.Action != "delete" || !sameJSON(t, ev.Target, notify.Target{Repository: "team/app", Digest: string(cfgDigest)}) {
		t.Errorf("blob delete %+v", ev)
	}

	// Everything was read in order; nothing else may arrive. Close flushes,
	// so whatever was still queued would be in the channel by now.
	srv.Close()
	select {
	case got := <-events:
		t.Errorf("unexpected event %+v", got.event)
	default:
	}

	// The queue's counts reach the metrics: every event above was
	// delivered, none dropped, none waiting.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`berth_notifications_pending{endpoint="ci"} 0`,
		`berth_notifications_dropped_total{endpoint="ci"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the metrics", want)
		}
	}
	if st := n.Stats(); st[0].Delivered < 8 || !strings.Contains(text, fmt.Sprintf(`berth_notifications_delivered_total{endpoint="ci"} %d`, st[0].Delivered)) {
		t.Errorf("delivered: stats %+v, metrics:\n%s", st, text)
	}
}

// htpasswdAuth is registry:2's auth.htpasswd with one user.
func htpasswdAuth(t *testing.T, user, password string) *setup.Result {
	t.Helper()
	dir := t.TempDir()
	line, err := htpasswd.Line(user, password, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(users, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	yml := "version: 0.1\nauth:\n  htpasswd:\n    realm: test\n    path: " + users + "\n"
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := setup.FromConfig(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}
