package interop

import (
	"bytes"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestBerthGarbageCollectServedByDistribution: berth writes the fixture
// tree and collects it with `berth garbage-collect`; distribution then
// serves every image exactly as berth did before the collection, and its
// own garbage-collect finds nothing left to delete.
func TestBerthGarbageCollectServedByDistribution(t *testing.T) {
	dist := distributionBinary(t)
	berth := berthBinary(t)
	root := t.TempDir()

	src := startRegistry(t, "berth", berth, root)
	c := newClient(t, src.URL())
	fx := pushFixtures(t, c)
	want := observe(t, "berth before garbage-collect", c, fx)
	src.Stop(t)

	out := run(t, berth, "garbage-collect", src.ConfigPath)
	// The fixtures leave a deleted manifest's body and a deleted blob.
	if !regexp.MustCompile(`deleted 0 manifests and 2 blobs`).MatchString(out) {
		t.Fatalf("berth garbage-collect:\n%s", out)
	}

	dst := startRegistry(t, "distribution", dist, root)
	got := observe(t, "distribution after berth's garbage-collect", newClient(t, dst.URL()), fx)
	compare(t, "berth before garbage-collect", want, "distribution after berth's garbage-collect", got)
	dst.Stop(t)

	out = run(t, dist, "garbage-collect", "--dry-run", src.ConfigPath)
	if !regexp.MustCompile(`(?m)^\d+ blobs marked, 0 blobs and 0 manifests eligible for deletion`).MatchString(out) {
		t.Fatalf("distribution's garbage-collect after berth's finds more to delete:\n%s", out)
	}
}

// run runs a registry command to completion and returns its output.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not finish within 2 minutes\n%s", bin, args, out.String())
	}
	return out.String()
}
