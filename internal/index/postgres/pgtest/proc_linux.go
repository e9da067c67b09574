package pgtest

import (
	"os/user"
	"syscall"
)

// procAttr runs a PostgreSQL tool as u (if set) and kills it when the test
// process dies, so a test binary killed by its timeout leaves no server.
func procAttr(u *user.User) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if u != nil {
		uid, gid := ids(u)
		a.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return a
}
