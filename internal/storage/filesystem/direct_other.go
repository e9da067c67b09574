//go:build !linux

package filesystem

import (
	"errors"
	"os"
)

// setDirect: direct I/O is only used on Linux; elsewhere every write goes
// through the page cache.
func setDirect(f *os.File, on bool) error {
	if on {
		return errors.ErrUnsupported
	}
	return nil
}
