//go:build !linux

package swift

import "os/exec"

func dieWithParent(cmd *exec.Cmd) {}
