//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/test/harness"
)

func port(b *harness.Berth) string { return b.Addr[strings.LastIndexByte(b.Addr, ':')+1:] }

// TestDockerMultiLayerPushPull: an image of four layers (a `docker import`ed
// base, a 100 MiB random file, a text file, an ADDed tar) is pushed,
// removed locally and pulled back: same manifest digest, same image ID, same
// file contents. Pushed again to a second repository, every layer is
// cross-repository mounted: no layer bytes travel a second time.
func TestDockerMultiLayerPushPull(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	b := harness.Start(t, harness.Options{})
	dir := t.TempDir()

	// Layer 1: docker import of a small rootfs.
	baseRef := "berth-e2e/import-base-" + port(b) + ":v1"
	writeFile(t, filepath.Join(dir, "base.tar"), tarOf(t, map[string][]byte{
		"etc/os-release": []byte("NAME=berth-e2e\nID=berth-e2e\n"),
		"base.txt":       []byte("imported base for " + b.Addr + "\n"),
	}))
	d.track(baseRef)
	d.run("docker", "import", filepath.Join(dir, "base.tar"), baseRef)

	// Layers 2-4: a 100 MiB file, a small file, an ADDed (extracted) tar.
	ctx := filepath.Join(dir, "ctx")
	big := randomFile(t, 100*MiB, 1)
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	linkOrCopy(t, big, filepath.Join(ctx, "big.bin"))
	hello := []byte("hello from the multi-layer test on " + b.Addr + "\n")
	writeFile(t, filepath.Join(ctx, "hello.txt"), hello)
	appJSON := []byte(`{"app":"berth-e2e","port":"` + port(b) + `"}`)
	writeFile(t, filepath.Join(ctx, "app.tar"), tarOf(t, map[string][]byte{"app/config.json": appJSON}))
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM "+baseRef+"\n"+
		"COPY big.bin /data/big.bin\n"+
		"COPY hello.txt /hello.txt\n"+
		"ADD app.tar /opt/\n"))

	ref := b.Addr + "/e2e/multi:v1"
	id := d.build(ctx, ref)
	dgst := d.push(ref)

	m := getManifest(t, b, "e2e/multi", "v1")
	if m.Digest != dgst {
		t.Fatalf("docker push reported %s, berth serves %s", dgst, m.Digest)
	}
	var man Manifest
	mustJSON(t, m.Body, &man)
	if man.Config.Digest != id {
		t.Errorf("config digest %s != image ID %s", man.Config.Digest, id)
	}
	if len(man.Layers) < 4 {
		t.Fatalf("manifest has %d layers, want 4:\n%s", len(man.Layers), m.Body)
	}
	var bigLayers int
	for _, l := range man.Layers {
		if l.Size >= 100*MiB {
			bigLayers++
		}
		if got := fileSHA256(t, blobDataPath(b.Root, l.Digest)); "sha256:"+got != l.Digest {
			t.Errorf("stored blob %s digests to sha256:%s", l.Digest, got)
		}
	}
	if bigLayers != 1 {
		t.Errorf("%d layers of 100 MiB or more, want 1", bigLayers)
	}
	t.Logf("pushed %s: %d layers, image %s", dgst, len(man.Layers), id)

	// Remove locally (the image itself, not just a tag), pull it back.
	d.rmi(ref)
	if d.exists(id) {
		t.Fatalf("image %s still present after docker rmi", id)
	}
	d.pull(ref)
	if got := d.imageID(ref); got != id {
		t.Errorf("pulled image ID %s, pushed %s", got, id)
	}
	if got, _ := d.file(ref, "/hello.txt", ""); !bytes.Equal(got, hello) {
		t.Errorf("/hello.txt after pull = %q, want %q", got, hello)
	}
	if got, _ := d.file(ref, "/opt/app/config.json", ""); !bytes.Equal(got, appJSON) {
		t.Errorf("/opt/app/config.json after pull = %q, want %q", got, appJSON)
	}
	if _, sum := d.file(ref, "/data/big.bin", ""); sum != fileSHA256(t, big) {
		t.Errorf("/data/big.bin after pull has sha256 %s, want %s", sum, fileSHA256(t, big))
	}
	if got := strings.TrimSpace(d.run("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref)); !strings.Contains(got, b.Addr+"/e2e/multi@"+dgst) {
		t.Errorf("RepoDigests %s lack %s", got, dgst)
	}

	// Second repository: layers are mounted, not uploaded.
	ref2 := b.Addr + "/e2e/multi-copy:v1"
	d.track(ref2)
	d.run("docker", "tag", ref, ref2)
	blobsBefore := len(filesNamed(t, b.Root, "data", "blobs"))
	mark := len(b.Requests(t))
	if dgst2 := d.push(ref2); dgst2 != dgst {
		t.Errorf("second push reported %s, first %s", dgst2, dgst)
	}
	b.WaitRequest(t, mark, 10*time.Second, "the second push's manifest PUT", func(r harness.Request) bool {
		return r.Method == http.MethodPut && r.Path == "/v2/e2e/multi-copy/manifests/v1"
	})
	var mounts, uploads, patches, puts int
	var trace []string
	for _, r := range b.RequestsSince(t, mark) {
		trace = append(trace, r.String())
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/blobs/uploads/") && r.Status == http.StatusCreated:
			mounts++
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/blobs/uploads/"):
			uploads++
		case r.Method == http.MethodPatch:
			patches++
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
			puts++
		}
	}
	// Docker mounts every layer; it re-uploads only the small config blob
	// (one POST/PATCH/PUT), as it does against distribution.
	if mounts != len(man.Layers) || uploads > 1 || patches > 1 || puts > 1 {
		t.Errorf("second push: %d mounts (want %d, one per layer), %d upload sessions, %d PATCH, %d PUT (want at most 1 each, the config):\n%s",
			mounts, len(man.Layers), uploads, patches, puts, strings.Join(trace, "\n"))
	}
	if after := len(filesNamed(t, b.Root, "data", "blobs")); after != blobsBefore {
		t.Errorf("second push stored %d new blobs, want 0", after-blobsBefore)
	}
	for _, l := range man.Layers {
		if st := headBlobStatus(t, b, "e2e/multi-copy", l.Digest); st != http.StatusOK {
			t.Errorf("HEAD layer %s in e2e/multi-copy: %d", l.Digest, st)
		}
	}
	if got := getManifest(t, b, "e2e/multi-copy", "v1").Digest; got != dgst {
		t.Errorf("e2e/multi-copy:v1 is %s, want %s", got, dgst)
	}
}

// filesNamed lists files called name under root whose path has a directory
// component called under.
func filesNamed(t *testing.T, root, name, under string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name && slices.Contains(strings.Split(p, string(filepath.Separator)), under) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// uploadLeftovers lists the files under any repository's _uploads.
func uploadLeftovers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/_uploads/") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestDockerConcurrentPushesShareBaseLayer: eight docker pushes at once of
// eight images (eight repositories) over one 50 MiB base layer. All
// succeed, every image pulls back with its ID and files, and the shared
// layer is stored exactly once.
func TestDockerConcurrentPushesShareBaseLayer(t *testing.T) {
	t.Parallel()
	const n = 8
	d := newDocker(t)
	b := harness.Start(t, harness.Options{})
	dir := t.TempDir()

	baseCtx := filepath.Join(dir, "base")
	if err := os.MkdirAll(baseCtx, 0o755); err != nil {
		t.Fatal(err)
	}
	base := randomFile(t, 50*MiB, 3)
	linkOrCopy(t, base, filepath.Join(baseCtx, "base.bin"))
	writeFile(t, filepath.Join(baseCtx, "Dockerfile"), []byte("FROM scratch\nCOPY base.bin /base.bin\n"))
	baseRef := "berth-e2e/shared-base-" + port(b) + ":v1"
	d.build(baseCtx, baseRef)

	refs := make([]string, n)
	ids := make([]string, n)
	notes := make([][]byte, n)
	for i := range n {
		ctx := filepath.Join(dir, fmt.Sprint(i))
		notes[i] = []byte(fmt.Sprintf("image %d of %d on %s\n", i, n, b.Addr))
		writeFile(t, filepath.Join(ctx, "note.txt"), notes[i])
		writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM "+baseRef+"\nCOPY note.txt /note.txt\n"))
		refs[i] = fmt.Sprintf("%s/e2e/concurrent-%d:v1", b.Addr, i)
		ids[i] = d.build(ctx, refs[i])
	}

	mark := len(b.Requests(t))
	var wg sync.WaitGroup
	errs := make([]error, n)
	digests := make([]string, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, err := d.try("docker", "push", refs[i])
			if err != nil {
				errs[i] = fmt.Errorf("docker push %s: %v\n%s\n%s", refs[i], err, out, errOut)
				return
			}
			if m := pushDigestRE.FindStringSubmatch(out); m != nil {
				digests[i] = m[1]
			} else {
				errs[i] = fmt.Errorf("docker push %s: no digest in output:\n%s", refs[i], out)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent pushes took %v", n, time.Since(start).Round(time.Millisecond))
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The point is concurrent uploads of one blob: a push either uploaded
	// the shared layer itself or mounted it (POST 201) from a repository
	// where another push had already finished it.
	for i := range n {
		b.WaitRequest(t, mark, 10*time.Second, fmt.Sprintf("push %d's manifest PUT", i), func(r harness.Request) bool {
			return r.Method == http.MethodPut && r.Path == fmt.Sprintf("/v2/e2e/concurrent-%d/manifests/v1", i)
		})
	}
	mounted := map[string]bool{}
	for _, r := range b.RequestsSince(t, mark) {
		if r.Method == http.MethodPost && r.Status == http.StatusCreated {
			mounted[r.Path] = true
		}
	}
	uploaders := n - len(mounted)
	t.Logf("%d of %d pushes uploaded the shared layer themselves, %d mounted it", uploaders, n, len(mounted))
	if uploaders < 2 {
		t.Errorf("only %d push uploaded the shared layer: the pushes did not overlap, so this did not test concurrent uploads of one blob", uploaders)
	}

	var shared Descriptor
	for i := range n {
		m := getManifest(t, b, fmt.Sprintf("e2e/concurrent-%d", i), "v1")
		if m.Digest != digests[i] {
			t.Errorf("image %d: docker push reported %s, berth serves %s", i, digests[i], m.Digest)
		}
		var man Manifest
		mustJSON(t, m.Body, &man)
		if len(man.Layers) != 2 {
			t.Fatalf("image %d has %d layers, want 2", i, len(man.Layers))
		}
		if i == 0 {
			shared = man.Layers[0]
		} else if man.Layers[0].Digest != shared.Digest {
			t.Errorf("image %d's base layer is %s, image 0's %s", i, man.Layers[0].Digest, shared.Digest)
		}
	}

	// One copy of the shared layer's bytes: its data file, and no other
	// file of its size anywhere under the root (no leftover upload or
	// temp file).
	want := blobDataPath(b.Root, shared.Digest)
	if got := filesOfSize(t, b.Root, shared.Size); len(got) != 1 || got[0] != want {
		t.Errorf("files of the shared layer's size (%d) under the root: %v, want exactly [%s]", shared.Size, got, want)
	}
	if entries, err := os.ReadDir(filepath.Dir(want)); err != nil || len(entries) != 1 {
		t.Errorf("blob directory of %s: %v entries (%v), want only data", shared.Digest, len(entries), err)
	}
	if sum := fileSHA256(t, want); "sha256:"+sum != shared.Digest {
		t.Errorf("shared layer data digests to sha256:%s, want %s", sum, shared.Digest)
	}
	if left := uploadLeftovers(t, b.Root); len(left) > 0 {
		t.Errorf("upload leftovers after all pushes completed: %v", left)
	}

	// Every image pulls back (after removing them and the base locally,
	// so the shared layer really comes from berth).
	d.rmi(append(slices.Clone(refs), baseRef)...)
	for i := range n {
		d.pull(refs[i])
		if got := d.imageID(refs[i]); got != ids[i] {
			t.Errorf("image %d pulled as %s, pushed %s", i, got, ids[i])
		}
		if got, _ := d.file(refs[i], "/note.txt", ""); !bytes.Equal(got, notes[i]) {
			t.Errorf("image %d: /note.txt = %q, want %q", i, got, notes[i])
		}
	}
	if _, sum := d.file(refs[n-1], "/base.bin", ""); sum != fileSHA256(t, base) {
		t.Errorf("/base.bin after pull has sha256 %s, want %s", sum, fileSHA256(t, base))
	}
}

// TestDockerPushInterruptedByRegistryCrash: berth is SIGKILLed while docker
// streams a 100 MiB layer, and restarted on the same root and port. Until a
// retried upload completes, the layer is not visible (HEAD and GET 404, no
// blob data file); docker's own retry then completes the push, a second
// push finds everything present, and the image pulls back intact.
func TestDockerPushInterruptedByRegistryCrash(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	const repo = "e2e/interrupted"
	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx")
	big := randomFile(t, 100*MiB, 2)
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	linkOrCopy(t, big, filepath.Join(ctx, "big.bin"))
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY big.bin /big.bin\n"))

	// A scout registry learns the compressed layer's digest (docker's gzip
	// of the same layer is deterministic), so the test can watch for it.
	scout := harness.Start(t, harness.Options{Name: "scout"})
	b := harness.Start(t, harness.Options{})
	scoutRef := scout.Addr + "/" + repo + ":v1"
	ref := b.Addr + "/" + repo + ":v1"
	id := d.build(ctx, scoutRef)
	d.track(ref)
	d.run("docker", "tag", scoutRef, ref)
	d.push(scoutRef)
	var scoutMan Manifest
	mustJSON(t, getManifest(t, scout, repo, "v1").Body, &scoutMan)
	layer := scoutMan.Layers[0]
	scout.Stop(t)
	t.Logf("the 100 MiB layer compresses to %s (%d bytes)", layer.Digest, layer.Size)

	// Push, and SIGKILL berth once 16 MiB of the layer have arrived.
	pctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	push := d.cmd(pctx, "docker", "push", ref)
	var pushOut bytes.Buffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	pushDone := make(chan error, 1)
	go func() { pushDone <- push.Wait() }()
	var pushErr error
	pushFinished := false
	waitPush := func() error {
		if !pushFinished {
			pushErr = <-pushDone
			pushFinished = true
		}
		return pushErr
	}
	defer func() {
		cancel()
		waitPush()
	}()

	uploads := filepath.Join(b.Root, "docker/registry/v2/repositories", repo, "_uploads", "*", "data")
	var partial int64
	harness.WaitFor(t, 2*time.Minute, "16 MiB of the layer to reach berth", func() (bool, string) {
		select {
		case err := <-pushDone:
			pushFinished, pushErr = true, err
			t.Fatalf("docker push ended (%v) before it could be interrupted:\n%s", err, pushOut.String())
		default:
		}
		matches, _ := filepath.Glob(uploads)
		for _, m := range matches {
			if info, err := os.Stat(m); err == nil && info.Size() >= 16*MiB {
				partial = info.Size()
				return true, ""
			}
		}
		return false, fmt.Sprintf("upload files %v", matches)
	})
	b.Kill(t)
	t.Logf("killed berth with %d of %d bytes uploaded", partial, layer.Size)
	mark := len(b.Requests(t))
	b.Restart(t)

	// Until the retried upload's PUT has been answered, the layer must not
	// be visible. HEAD every 25ms while docker's push runs.
	committed := func() bool {
		for _, r := range b.RequestsSince(t, mark) {
			if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") && r.Status == http.StatusCreated {
				return true
			}
		}
		return false
	}
	checks := 0
	if st := httpDo(t, http.MethodGet, b.URL()+"/v2/"+repo+"/blobs/"+layer.Digest, nil, nil).Status; st != http.StatusNotFound && !committed() {
		t.Errorf("GET of the interrupted layer right after restart: %d, want 404", st)
	}
	if _, err := os.Stat(blobDataPath(b.Root, layer.Digest)); err == nil && !committed() {
		t.Errorf("blob data file of the interrupted layer exists right after restart")
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
poll:
	for {
		st := headBlobStatus(t, b, repo, layer.Digest)
		checks++
		if st == http.StatusOK {
			// Visible: a completed upload must account for it. Its access
			// line may land a moment after the response.
			b.WaitRequest(t, mark, 10*time.Second, "a completed blob upload (PUT 201) explaining HEAD 200", func(r harness.Request) bool {
				return r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") && r.Status == http.StatusCreated
			})
			break
		}
		if st != http.StatusNotFound {
			t.Fatalf("HEAD of the interrupted layer: %d, want 404", st)
		}
		select {
		case err := <-pushDone:
			pushFinished, pushErr = true, err
			break poll
		case <-tick.C:
		}
	}
	t.Logf("HEAD checked %d times before the layer appeared", checks)

	// docker retries the layer itself ("Retrying in 5 seconds"); if it had
	// given up, the next push must succeed.
	if err := waitPush(); err != nil {
		t.Logf("interrupted docker push failed (%v):\n%s\npushing again", err, pushOut.String())
	} else {
		t.Logf("interrupted docker push completed after its retry:\n%s", pushOut.String())
	}
	dgst := d.push(ref)
	m := getManifest(t, b, repo, "v1")
	if m.Digest != dgst {
		t.Errorf("docker push reported %s, berth serves %s", dgst, m.Digest)
	}
	var man Manifest
	mustJSON(t, m.Body, &man)
	if len(man.Layers) != 1 || man.Layers[0].Digest != layer.Digest {
		t.Fatalf("pushed layers %v, want [%s] as at the scout", man.Layers, layer.Digest)
	}
	if st := headBlobStatus(t, b, repo, layer.Digest); st != http.StatusOK {
		t.Errorf("HEAD layer after the push: %d", st)
	}
	if sum := fileSHA256(t, blobDataPath(b.Root, layer.Digest)); "sha256:"+sum != layer.Digest {
		t.Errorf("stored layer digests to sha256:%s, want %s", sum, layer.Digest)
	}
	if got := filesOfSize(t, b.Root, layer.Size); len(got) != 1 {
		t.Errorf("files of the layer's size under the root: %v, want only its blob data", got)
	}

	d.rmi(ref, scoutRef)
	d.pull(ref)
	if got := d.imageID(ref); got != id {
		t.Errorf("pulled image ID %s, pushed %s", got, id)
	}
	if _, sum := d.file(ref, "/big.bin", ""); sum != fileSHA256(t, big) {
		t.Errorf("/big.bin after pull has sha256 %s, want %s", sum, fileSHA256(t, big))
	}
}

// TestSameManifestDigestAcrossClients: an image pushed by docker has one
// manifest digest whoever reads it: docker, podman, skopeo, crane, regctl
// and berth's own Docker-Content-Digest.
func TestSameManifestDigestAcrossClients(t *testing.T) {
	t.Parallel()
	d := newDocker(t)
	for _, tool := range []string{"podman", "skopeo", "crane", "regctl"} {
		requireTool(t, tool)
	}
	b := harness.Start(t, harness.Options{})
	ctx := t.TempDir()
	a := []byte("first file, " + b.Addr + "\n")
	writeFile(t, filepath.Join(ctx, "a.txt"), a)
	writeFile(t, filepath.Join(ctx, "b.txt"), []byte("second file\n"))
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n"))
	ref := b.Addr + "/e2e/same:v1"
	d.build(ctx, ref)
	dgst := d.push(ref)

	m := getManifest(t, b, "e2e/same", "v1")
	if m.Digest != dgst || m.MediaType != mtDockerManifest {
		t.Fatalf("berth serves %s (%s), docker pushed %s (%s)", m.Digest, m.MediaType, dgst, mtDockerManifest)
	}
	got := map[string]string{"docker push": dgst, "berth": m.Digest}
	if rd := d.run("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref); strings.Contains(rd, b.Addr+"/e2e/same@"+dgst) {
		got["docker RepoDigests"] = dgst
	} else {
		got["docker RepoDigests"] = strings.TrimSpace(rd)
	}

	c := containersEnv(t, b)
	c.run("podman", "pull", "--tls-verify=false", ref)
	got["podman"] = strings.TrimSpace(c.run("podman", "image", "inspect", "--format", "{{.Digest}}", ref))
	if content := podmanFile(t, c, ref, "a.txt"); !bytes.Equal(content, a) {
		t.Errorf("podman: /a.txt = %q, want %q", content, a)
	}
	got["skopeo inspect"] = strings.TrimSpace(c.run("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref))
	got["skopeo inspect --raw"] = digestOf([]byte(c.run("skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref)))
	got["crane digest"] = strings.TrimSpace(runner{t: t}.run("crane", "digest", "--insecure", ref))
	got["crane manifest"] = digestOf([]byte(runner{t: t}.run("crane", "manifest", "--insecure", ref)))
	got["regctl"] = strings.TrimSpace(regctlEnv(t, b).run("regctl", "image", "digest", ref))
	for client, g := range got {
		if g != dgst {
			t.Errorf("%s: %s, want %s", client, g, dgst)
		}
	}
}
