package interop

import (
	"os"
	"os/exec"
	"testing"

	"github.com/berth-registry/berth/internal/testenv"
	"github.com/berth-registry/berth/test/harness"
)

// distributionPackage is the Debian package that ships distribution 2.8.2.
const distributionPackage = "docker-registry"

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// distributionBinary returns the path of distribution 2.8.2's binary, or
// skips the test when it is missing (fails it under CI, which must never
// skip silently). DOCKER_REGISTRY_BIN overrides the lookup.
func distributionBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DOCKER_REGISTRY_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry"
	}
	msg := "docker-registry (distribution 2.8.2) not found: install it with `apt-get install -y " +
		distributionPackage + "`"
	testenv.Missing(t, msg)
	return ""
}

// berthBinary returns berth's binary: INTEROP_BERTH_BIN if set (e.g. one CI
// built for other suites), else the harness's (BERTH_BIN, or ./cmd/berth
// built once per test run).
func berthBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("INTEROP_BERTH_BIN"); p != "" {
		return p
	}
	return harness.Binary(t)
}

// startRegistry starts bin (berth or distribution) serving root, delete
// enabled, on a free 127.0.0.1 port, and returns once /v2/ answers. The
// process is stopped in t.Cleanup if the test has not stopped it.
func startRegistry(t *testing.T, name, bin, root string) *harness.Berth {
	t.Helper()
	return harness.Start(t, harness.Options{Name: name, Bin: bin, Root: root})
}
