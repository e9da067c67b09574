package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testlog"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/api"
)

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	env    Envelope
}

// receiver is an endpoint that reports every request on got and answers
// with status(n) for the n-th request (1-based); nil answers 200.
type receiver struct {
	*httptest.Server
	got      chan delivery
	requests atomic.Int64
}

func newReceiver(t *testing.T, status func(n int64) int) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan delivery, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		d := delivery{header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &d.env); err != nil {
			t.Errorf("request %d: body is not an envelope: %v: %s", n, err, body)
		}
		rc.got <- d
		if status != nil {
			w.WriteHeader(status(n))
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// next waits for the next delivery; a test that gets none is stopped by
// go test's timeout, not by a guess at how long delivery takes.
func (rc *receiver) next() delivery { return <-rc.got }

// notifier starts a Notifier with tiny backoffs and closes it at the end.
func notifier(t *testing.T, opts Options) *Notifier {
	t.Helper()
	for i := range opts.Endpoints {
		if opts.Endpoints[i].Backoff == 0 {
			opts.Endpoints[i].Backoff = time.Millisecond
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

var manifestBody = []byte(`{"schemaVersion":2,"mediaType":"` + manifestType + `",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("c", 64) + `","size":7},` +
	`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("1", 64) + `","size":100},` +
	`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("2", 64) + `","size":200,"annotations":{"a":"b"}}]}`)

func manifestPush() *api.Event {
	return &api.Event{
		Action: api.ActionPush, Time: time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("x", 3600)),
		Manifest: true, Repository: "team/app", Digest: digest.FromBytes(manifestBody),
		MediaType: manifestType, Size: int64(len(manifestBody)), Tag: "v1", Body: manifestBody,
		URLBase: "https://registry.example.com/prefix", Actor: "alice",
		Request: api.EventRequest{ID: "req-1", Addr: "192.0.2.7", Host: "registry.example.com", Method: http.MethodPut, UserAgent: "docker/27"},
	}
}

// blobEvent is a blob event whose digest encodes i, to tell events apart.
func blobEvent(action string, i int) *api.Event {
	return &api.Event{Action: action, Repository: "team/app", Digest: digest.FromString(string(rune('a' + i))),
		MediaType: "application/octet-stream", Size: int64(i), URLBase: "http://r"}
}

func TestEnvelope(t *testing.T) {
	rc := newReceiver(t, nil)
	n := notifier(t, Options{
		Endpoints:  []Endpoint{{Name: "ci", URL: rc.URL + "/hook", Headers: http.Header{"Authorization": {"Bearer s3cret"}, "X-Extra": {"a", "b"}}}},
		SourceAddr: "registry-1:5000",
	})
	e := manifestPush()
	n.Emit(e)
	d := rc.next()

	if ct := d.header.Get("Content-Type"); ct != MediaType {
		t.Errorf("Content-Type %q, want %q", ct, MediaType)
	}
	if got := d.header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization %q", got)
	}
	if got := d.header.Values("X-Extra"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("X-Extra %q", got)
	}
	if len(d.env.Events) != 1 {
		t.Fatalf("%d events in the envelope, want 1: %s", len(d.env.Events), d.body)
	}
	ev := d.env.Events[0]
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("id %q is not a uuid", ev.ID)
	}
	if !ev.Timestamp.Equal(e.Time) || ev.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v, want %v in UTC", ev.Timestamp, e.Time)
	}
	want := Target{
		MediaType: manifestType, Size: e.Size, Length: e.Size, Digest: string(e.Digest), Repository: "team/app",
		URL: "https://registry.example.com/prefix/v2/team/app/manifests/" + string(e.Digest), Tag: "v1",
	}
	if !equalJSON(t, ev.Target, want) {
		t.Errorf("target %+v, want %+v", ev.Target, want)
	}
	if ev.Action != "push" || ev.Actor.Name != "alice" || ev.Request != (Request{ID: "req-1", Addr: "192.0.2.7", Host: "registry.example.com", Method: "PUT", UserAgent: "docker/27"}) {
		t.Errorf("event %+v", ev)
	}
	if ev.Source.Addr != "registry-1:5000" {
		t.Errorf("source %+v", ev.Source)
	}
	if _, err := uuid.Parse(ev.Source.InstanceID); err != nil {
		t.Errorf("instanceID %q is not a uuid", ev.Source.InstanceID)
	}
	// registry:2's wire names, checked on the raw JSON rather than through
	// our own struct tags.
	for _, key := range []string{`"events":[{`, `"id":`, `"timestamp":"2025-03-04T04:06:07.000000008Z"`, `"action":"push"`,
		`"mediaType":`, `"size":`, `"length":`, `"digest":`, `"repository":`, `"url":`, `"tag":"v1"`,
		`"request":{"id":"req-1","addr":`, `"host":`, `"method":"PUT"`, `"useragent":"docker/27"`,
		`"actor":{"name":"alice"}`, `"source":{"addr":"registry-1:5000","instanceID":`} {
		if !bytes.Contains(d.body, []byte(key)) {
			t.Errorf("body lacks %s: %s", key, d.body)
		}
	}
	if bytes.Contains(d.body, []byte("references")) {
		t.Errorf("references without includereferences: %s", d.body)
	}

	// A second event gets its own id.
	n.Emit(e)
	if d2 := rc.next(); d2.env.Events[0].ID == ev.ID {
		t.Error("two events share an id")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

func TestReferencesAndDeletes(t *testing.T) {
	rc := newReceiver(t, nil)
	n := notifier(t, Options{Endpoints: []Endpoint{{Name: "ci", URL: rc.URL}}, IncludeReferences: true})
	n.Emit(manifestPush())
	refs := rc.next().env.Events[0].Target.References
	if len(refs) != 3 || refs[0].Digest != "sha256:"+strings.Repeat("c", 64) || refs[0].Size != 7 ||
		refs[2].Digest != "sha256:"+strings.Repeat("2", 64) || refs[2].Annotations["a"] != "b" ||
		refs[1].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("references %+v", refs)
	}

	// Deletes have no URL; a tag delete names the tag only.
	n.Emit(&api.Event{Action: api.ActionDelete, Manifest: true, Repository: "team/app", Tag: "v1", URLBase: "http://r"})
	tg := rc.next().env.Events[0].Target
	if !equalJSON(t, tg, Target{Repository: "team/app", Tag: "v1"}) {
		t.Errorf("tag delete target %+v", tg)
	}
	// A mount says where from; a blob's URL is under /blobs/.
	m := blobEvent(api.ActionMount, 1)
	m.FromRepository = "base/img"
	n.Emit(m)
	tg = rc.next().env.Events[0].Target
	if tg.FromRepository != "base/img" || tg.URL != "http://r/v2/team/app/blobs/"+string(m.Digest) || tg.References != nil {
		t.Errorf("mount target %+v", tg)
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	// 500, 503, then a 3xx (accepted, as by registry:2), then 204.
	statuses := []int{500, 503, 304, 204}
	rc := newReceiver(t, func(n int64) int { return statuses[min(int(n), len(statuses))-1] })
	var logs testlog.Buffer
	n := notifier(t, Options{
		Endpoints: []Endpoint{{Name: "ci", URL: rc.URL, Threshold: 2, Backoff: time.Millisecond, Headers: http.Header{"Authorization": {"Bearer s3cret"}}}},
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	first := blobEvent(api.ActionPush, 1)
	n.Emit(first)
	var ids []string
	for range 3 {
		d := rc.next()
		if d.env.Events[0].Target.Digest != string(first.Digest) {
			t.Fatalf("got %s before %s was delivered", d.env.Events[0].Target.Digest, first.Digest)
		}
		ids = append(ids, d.env.Events[0].ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("a retry is a new event: ids %q", ids)
	}
	n.Emit(blobEvent(api.ActionPush, 2)) // the 304 was accepted: this is next
	if d := rc.next(); d.env.Events[0].Target.Digest != string(blobEvent(api.ActionPush, 2).Digest) {
		t.Errorf("after the accepted retry got %s", d.env.Events[0].Target.Digest)
	}
	n.Close(context.Background())
	// Close waited for the sender: its counts are final.
	if st := n.Stats(); len(st) != 1 || st[0] != (QueueStats{Endpoint: "ci", Delivered: 2, Failures: 2}) {
		t.Errorf("stats = %+v; want 2 delivered after 2 failed attempts, none pending or dropped", st)
	}
	out := logs.String()
	if !strings.Contains(out, "endpoint failing") || !strings.Contains(out, "accepts events again") {
		t.Errorf("failure and recovery not logged:\n%s", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("the Authorization header was logged:\n%s", out)
	}
}

func TestOrder(t *testing.T) {
	// The first attempt of every third event fails, so retries interleave
	// with the events queued behind them. Requests to one endpoint come one
	// at a time, so the handler needs no lock.
	seen := map[string]bool{}
	order := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env Envelope
		json.NewDecoder(r.Body).Decode(&env)
		dg := env.Events[0].Target.Digest
		if !seen[dg] {
			seen[dg] = true
			if len(seen)%3 == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
		order <- dg
	}))
	defer srv.Close()
	n := notifier(t, Options{Endpoints: []Endpoint{{Name: "ci", URL: srv.URL}}})
	const count = 50
	for i := range count {
		n.Emit(blobEvent(api.ActionPush, i))
	}
	for i := range count {
		if got, want := <-order, string(blobEvent(api.ActionPush, i).Digest); got != want {
			t.Fatalf("delivery %d: got %s, want %s", i, got, want)
		}
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	got := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env Envelope
		json.NewDecoder(r.Body).Decode(&env)
		select {
		case started <- struct{}{}:
			<-release // hold the first delivery while the queue overflows
		default:
		}
		got <- env.Events[0].Target.Digest
	}))
	defer srv.Close()
	var logs testlog.Buffer
	n := notifier(t, Options{
		Endpoints: []Endpoint{{Name: "ci", URL: srv.URL, Timeout: time.Hour}},
		QueueSize: 3,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	n.Emit(blobEvent(api.ActionPush, 0))
	<-started // event 0 is out of the queue, in flight
	// Ten more into a queue of three, with its sender stuck: none of these
	// calls may block (if one did, the test would hang here).
	for i := 1; i <= 10; i++ {
		n.Emit(blobEvent(api.ActionPush, i))
	}
	if st := n.Stats(); st[0].Pending != 3 || st[0].Dropped != 7 {
		t.Errorf("stats with the sender stuck: %+v; want 3 pending, 7 dropped", st[0])
	}
	close(release)
	n.Close(context.Background())
	close(got)
	var order []string
	for d := range got {
		order = append(order, d)
	}
	var want []string
	for _, i := range []int{0, 8, 9, 10} {
		want = append(want, string(blobEvent(api.ActionPush, i).Digest))
	}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("delivered\n%q\nwant the in-flight event and the newest three\n%q", order, want)
	}
	if !strings.Contains(logs.String(), "oldest events dropped") || !strings.Contains(logs.String(), "dropped_total=7") {
		t.Errorf("drops not logged:\n%s", logs.String())
	}
}

func TestIgnoredAndDisabled(t *testing.T) {
	rc := newReceiver(t, nil)
	disabled := newReceiver(t, nil)
	n := notifier(t, Options{Endpoints: []Endpoint{
		{Name: "off", URL: disabled.URL, Disabled: true},
		{Name: "ci", URL: rc.URL, IgnoredMediaTypes: []string{"application/octet-stream"}, IgnoredActions: []string{"pull"}},
	}})
	n.Emit(blobEvent(api.ActionPush, 1)) // ignored media type
	pull := manifestPush()
	pull.Action = api.ActionPull
	n.Emit(pull) // ignored action
	n.Emit(manifestPush())
	del := blobEvent(api.ActionDelete, 2)
	del.MediaType = "" // as the API sends deletes
	n.Emit(del)
	n.Close(context.Background()) // delivers everything queued
	var got []string
	for len(rc.got) > 0 {
		ev := rc.next().env.Events[0]
		got = append(got, ev.Action+" "+ev.Target.MediaType)
	}
	if want := []string{"push " + manifestType, "delete "}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %q, want %q", got, want)
	}
	if n := disabled.requests.Load(); n != 0 {
		t.Errorf("disabled endpoint got %d requests", n)
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	rc := newReceiver(t, nil)
	n := notifier(t, Options{Endpoints: []Endpoint{{Name: "ci", URL: rc.URL}}})
	for i := range 20 {
		n.Emit(blobEvent(api.ActionPush, i))
	}
	n.Close(context.Background())
	if got := len(rc.got); got != 20 {
		t.Errorf("%d events delivered before Close returned, want 20", got)
	}
	n.Emit(blobEvent(api.ActionPush, 99)) // after Close: dropped, no panic
}

func TestCloseIsBounded(t *testing.T) {
	// An endpoint that never answers, and one that always fails: both hold
	// their sender in a retry loop that only shutdown ends.
	hung := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // so that net/http notices the client going away
		select {
		case hung <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer srv.Close()
	failing := newReceiver(t, func(int64) int { return http.StatusInternalServerError })
	var logs testlog.Buffer
	n := notifier(t, Options{
		Endpoints: []Endpoint{{Name: "hung", URL: srv.URL, Timeout: time.Hour}, {Name: "failing", URL: failing.URL}},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for i := range 3 {
		n.Emit(blobEvent(api.ActionPush, i))
	}
	<-hung
	failing.next()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the flush time is already up
	n.Close(ctx)
	if out := logs.String(); strings.Count(out, "events undelivered") != 2 || !strings.Contains(out, "events=3") {
		t.Errorf("lost events not logged per endpoint:\n%s", out)
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/", "/relative", "http://"} {
		if _, err := New(Options{Endpoints: []Endpoint{{Name: "x", URL: u}}}); err == nil {
			t.Errorf("New accepted url %q", u)
		}
	}
}
