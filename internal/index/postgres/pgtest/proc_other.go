//go:build !linux && !windows

package pgtest

import (
	"os/user"
	"syscall"
)

// procAttr runs a PostgreSQL tool as u, if set (Unix).
func procAttr(u *user.User) *syscall.SysProcAttr {
	if u == nil {
		return nil
	}
	uid, gid := ids(u)
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}
