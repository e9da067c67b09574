//go:build linux

package filesystem

import (
	"os"

	"golang.org/x/sys/unix"
)

// setDirect turns direct I/O on or off for f's open file. A filesystem
// without O_DIRECT refuses with EINVAL.
func setDirect(f *os.File, on bool) error {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= unix.O_DIRECT
	} else {
		flags &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, flags)
	return err
}
