package swift

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a server go away with the test binary, even when the
// binary is killed (go test's timeout) before it can stop the server.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
