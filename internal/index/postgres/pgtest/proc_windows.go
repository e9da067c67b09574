package pgtest

import (
	"os/user"
	"syscall"
)

// procAttr: on Windows the tools run as the test's own user.
func procAttr(*user.User) *syscall.SysProcAttr { return nil }
