//go:build tools

// Package conformance pins the OCI distribution-spec conformance suite so
// that run.sh can build it with `go test -c` from this module.
package conformance

import (
	_ "github.com/opencontainers/distribution-spec/conformance"
)
