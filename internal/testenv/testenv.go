// Package testenv decides what a test does when something it needs from
// the machine is missing (a client, a server, a daemon): locally it skips,
// so `go test ./...` runs anywhere; under CI it fails, so CI cannot pass by
// skipping what it is there to test. Every test that depends on the machine
// goes through it, so the rule and the CI variable's reading are the same
// everywhere.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the CI variable is set, and not to 0 or false.
func InCI() bool {
	ci := strings.ToLower(os.Getenv("CI"))
	return ci != "" && ci != "0" && ci != "false"
}

// Missing skips the test, saying why, or fails it under CI.
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skip(why)
}

// Tool returns the path of the program name, found on PATH; if it is not
// there the test is Missing, with install saying how to get it.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not found on PATH: "+install)
	}
	return p
}
