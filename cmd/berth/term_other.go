//go:build !linux

package main

import (
	"errors"
	"io"
	"os"
)

func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File, io.Writer, string) (string, error) {
	return "", errors.New("password prompt not supported on this system")
}
