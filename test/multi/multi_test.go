//go:build e2e

// Package multi runs several berth processes on one storage and one
// PostgreSQL index, as seed articles 000 and 001 run registry:2 servers on
// one replicated tree or one object store: three writable instances behind
// nginx round-robin and a read-only replica. It pushes through the balancer
// (chunks of one upload land on different instances), pulls from every
// instance directly, kills an instance with SIGKILL in the middle of a push,
// and checks at the end that the shared index says what storage says.
//
// It needs PostgreSQL and nginx (apt-get install -y postgresql nginx), and
// for the S3 variant MinIO or versitygw
// (internal/storage/s3/testdata/install-s3-server.sh); without them it
// skips, or fails when CI is set. BERTH_MULTI_STORAGE=filesystem or s3 runs
// one variant only.
//
//	go test -tags e2e ./test/multi/
package multi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/index/postgres/pgtest"
	"github.com/berth-registry/berth/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func TestMultiInstance(t *testing.T) {
	need(t, "nginx", "/usr/sbin/nginx")
	pg := pgtest.Start(t)
	want := os.Getenv("BERTH_MULTI_STORAGE")
	for _, v := range []struct {
		name    string
		backend func(*testing.T) *backend
	}{{"filesystem", filesystemBackend}, {"s3", s3Backend}} {
		if want != "" && want != v.name {
			continue
		}
		t.Run(v.name, func(t *testing.T) { runCluster(t, pg, v.backend(t)) })
	}
}

func indexConfig(dsn string) string {
	return fmt.Sprintf("berth:\n  index:\n    postgres:\n      dsn: %q\n", dsn)
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func countIn(b *harness.Berth, s string) int {
	data, _ := os.ReadFile(b.LogPath)
	return strings.Count(string(data), s)
}

const building = "building index from storage"

func runCluster(t *testing.T, pg *pgtest.Server, b *backend) {
	dsn := pg.NewDatabase(t)
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	t.Logf("storage: %s; index: %s", b.name, dsn)

	// An existing registry:2 tree, never seen by berth.
	legacy := []image{
		newImage("legacy/app", "1.0", 1, 40_000),
		newImage("legacy/base", "latest", 2, 20_000, 10_000),
	}
	seedStorage(t, b, legacy...)

	// Three writable instances on the shared storage and index. The first
	// builds the index from the tree; the others find it built.
	names := []string{"berth-a", "berth-b", "berth-c"}
	var nodes []*harness.Berth
	for _, name := range names {
		nodes = append(nodes, harness.Start(t, harness.Options{
			Name: name, Root: b.root, ExtraConfig: indexConfig(dsn), Env: b.env,
		}))
	}
	if countIn(nodes[0], building) != 1 {
		t.Errorf("the first instance did not build the index from the existing tree:\n%s", nodes[0].LogTail(20))
	}
	for _, n := range nodes[1:] {
		if countIn(n, building) != 0 {
			t.Errorf("%s rebuilt an index already built", n.Name)
		}
	}

	// A read-only replica (seed 001's "regular servers"), configured the
	// way the seed configures registry:2, on a database role that may only
	// read.
	pg.Exec(t, db,
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth_replica') THEN CREATE ROLE berth_replica LOGIN; END IF; END $$`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO berth_replica`)
	replica := harness.Start(t, harness.Options{
		Name: "berth-replica", Root: b.root, ExtraConfig: indexConfig(pg.DSN(db, "berth_replica")),
		Env: append([]string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true"}, b.env...),
	})
	if countIn(replica, building) != 0 {
		t.Error("the read-only replica built the index")
	}

	lb := startNginx(t, []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr})
	all := append(append([]*harness.Berth{}, nodes...), replica)

	// Everything answers the same, from every instance.
	sameEverywhere := func(what string, instances []*harness.Berth, images []image) string {
		t.Helper()
		var first string
		for i, n := range instances {
			for _, im := range images {
				if err := pull(n.URL(), im); err != nil {
					t.Errorf("%s: pull from %s: %v", what, n.Name, err)
				}
			}
			l, err := listing(n.URL())
			check(t, err)
			if i == 0 {
				first = l
			} else if l != first {
				t.Errorf("%s: %s lists\n%s\nbut %s lists\n%s", what, n.Name, l, instances[0].Name, first)
			}
		}
		return first
	}
	sameEverywhere("the imported tree", all, legacy)

	// Pushes through the balancer, in chunks: round-robin sends the
	// requests of one upload to different instances.
	var pushed []image
	var uploads []string
	for i := range 4 {
		im := newImage(fmt.Sprintf("team/svc%d", i), "v1", uint64(10+i), 600_000, 300_000)
		ids, failed, err := pushImage(lb.URL(), im, 128<<10, 1)
		if err != nil || len(failed) > 0 {
			t.Fatalf("push %s through nginx: %v %v", im.repo, err, failed)
		}
		pushed = append(pushed, im)
		uploads = append(uploads, ids...)
	}
	spread := 0
	for _, id := range uploads {
		hit := map[string]int{}
		requests := 0
		for _, n := range nodes {
			for _, r := range n.Requests(t) {
				if strings.HasSuffix(r.Path, "/blobs/uploads/"+id) && (r.Method == http.MethodPatch || r.Method == http.MethodPut) {
					hit[n.Name]++
					requests++
				}
			}
		}
		if requests >= 2 && len(hit) < 2 {
			t.Errorf("upload %s: %d PATCH/PUT requests all on one instance: %v", id, requests, hit)
		}
		if len(hit) >= 2 {
			spread++
		}
	}
	if spread == 0 {
		t.Fatal("no upload had its requests on two instances")
	}
	t.Logf("%d of %d uploads were continued on another instance than the one that began them", spread, len(uploads))
	sameEverywhere("after pushes through nginx", all, append(legacy, pushed...))

	// One tag moved from two instances at once, many times. Storage and the
	// index must end up agreeing (checked by the rebuild at the end).
	var wg sync.WaitGroup
	var raceMu sync.Mutex
	var raceErrs []error
	for w, n := range nodes[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				im := newImage("race/app", "latest", uint64(100+10*w+j), 1000)
				if _, _, err := pushImage(n.URL(), im, 1<<20, 1); err != nil {
					raceMu.Lock()
					raceErrs = append(raceErrs, err)
					raceMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range raceErrs {
		t.Errorf("concurrent tag push: %v", err)
	}
	sameEverywhere("after racing one tag from two instances", all, nil)

	// The replica serves reads and refuses writes, with registry:2's 405
	// and the spec's UNSUPPORTED code.
	for _, w := range []struct{ method, path string }{
		{http.MethodPost, "/v2/team/new/blobs/uploads/"},
		{http.MethodPut, "/v2/team/svc0/manifests/v2"},
		{http.MethodDelete, "/v2/team/svc0/manifests/v1"},
	} {
		resp, body, err := request(w.method, replica.URL()+w.path, ociManifest, nil, bytes.NewReader(pushed[0].manifest), http.StatusMethodNotAllowed)
		if err != nil || errorCode(body) != "UNSUPPORTED" {
			t.Errorf("replica %s %s: %v %v %s", w.method, w.path, resp, err, body)
		}
	}

	// kill -9 of the instance streaming an upload: the client sees the
	// request fail, retries from a new upload, and nginx sends the retry
	// to the instances still alive.
	crash := newImage("crash/app", "v1", 77, 3<<20)
	killed := killMidUpload(t, lb, nodes, crash)
	ids, failed, err := pushImage(lb.URL(), crash, 512<<10, 3)
	if err != nil {
		t.Fatalf("retried push after killing %s: %v (failed attempts: %v)", killed.Name, err, failed)
	}
	t.Logf("push after the kill: %d uploads, %d failed attempts first", len(ids), len(failed))
	if errs := lb.Errors(); !strings.Contains(errs, "connect() failed") && !strings.Contains(errs, "upstream") {
		t.Errorf("nginx logged no upstream failure:\n%s", harness.Tail(errs, 20))
	}
	var alive []*harness.Berth
	for _, n := range all {
		if n != killed {
			alive = append(alive, n)
		}
	}
	everything := append(append(append([]image{}, legacy...), pushed...), crash)
	sameEverywhere("after the kill", alive, everything)

	// The killed instance comes back: no rebuild (the index is shared and
	// built), same answers as the others.
	killed.Restart(t)
	if countIn(killed, building) != boolInt(killed == nodes[0]) {
		t.Errorf("%s rebuilt the shared index on restart", killed.Name)
	}
	before := sameEverywhere("after the restart", all, everything)

	// The shared index says what storage says: rebuilding it from storage
	// alone changes nothing.
	cmd := exec.Command(harness.Binary(t), "index", "rebuild", nodes[0].ConfigPath)
	cmd.Env = append(cleanEnv(), b.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("berth index rebuild: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(lastLine(out)))
	after := sameEverywhere("after berth index rebuild", all, everything)
	if after != before {
		t.Errorf("the index disagreed with storage: before the rebuild\n%s\nafter\n%s", before, after)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// killMidUpload starts the upload of im's first layer through nginx as one
// streamed PATCH, finds the instance receiving it, kills it with SIGKILL
// half-way, and checks that the client saw the request fail.
func killMidUpload(t *testing.T, lb *nginx, nodes []*harness.Berth, im image) *harness.Berth {
	t.Helper()
	layer := im.layers[0]
	resp, _, err := request(http.MethodPost, lb.URL()+"/v2/"+im.repo+"/blobs/uploads/", "", nil, nil, http.StatusAccepted)
	check(t, err)
	loc, err := absolute(lb.URL(), resp.Header.Get("Location"))
	check(t, err)

	pr, pw := io.Pipe()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// No Content-Length: the body streams (chunked) as it is written.
		resp, _, err := request(http.MethodPatch, loc, "application/octet-stream", nil, pr, http.StatusAccepted)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		pr.CloseWithError(io.ErrUnexpectedEOF)
		done <- result{code, err}
	}()
	half := len(layer) / 2
	if _, err := pw.Write(layer[:half]); err != nil {
		t.Fatalf("streaming the first half: %v", err)
	}

	ports := map[int]string{}
	byName := map[string]*harness.Berth{}
	for _, n := range nodes {
		_, p, _ := net.SplitHostPort(n.Addr)
		port, _ := strconv.Atoi(p)
		ports[port] = n.Name
		byName[n.Name] = n
	}
	var victim *harness.Berth
	harness.WaitFor(t, 30*time.Second, "the instance receiving the upload", func() (bool, string) {
		name, err := serving(t, ports)
		if err != nil {
			return false, err.Error()
		}
		victim = byName[name]
		return true, ""
	})
	t.Logf("killing %s (pid %d) with SIGKILL in the middle of a %d-byte PATCH", victim.Name, victim.Pid(), len(layer))
	victim.Kill(t)

	// The rest of the body goes nowhere: the write fails once nginx gives
	// up on the request.
	go func() {
		pw.Write(layer[half:])
		pw.Close()
	}()
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatalf("the PATCH cut by the kill succeeded (%d)", r.code)
		}
		t.Logf("the client saw: %v", r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the PATCH cut by the kill did not end within 2 minutes")
	}
	return victim
}
