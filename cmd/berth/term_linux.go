package main

import (
	"bufio"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readNoEcho turns echo off on the terminal f, then shows prompt on out
// (in this order, so nothing typed after the prompt is echoed) and reads
// one line.
func readNoEcho(f *os.File, out io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	// Ctrl-C must not leave the terminal without echo.
	sigs := make(chan os.Signal, 1)
	defer close(sigs) // after Stop (defers run last first): ends the goroutine
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
			os.Stderr.WriteString("\n")
			os.Exit(130)
		}
	}()
	io.WriteString(out, prompt)
	defer io.WriteString(out, "\n")
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
