package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// minBcryptCost is the lowest cost berth writes: htpasswd(1) and registry:2's
// own image default to 5, which is far too cheap today.
const minBcryptCost = 10

// passwordOptions say where a command takes the password from.
type passwordOptions struct {
	stdin bool
	cost  int
}

func (o *passwordOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.stdin, "password-stdin", false, "read the password from standard input (its first line)")
	cmd.Flags().IntVarP(&o.cost, "cost", "C", minBcryptCost, fmt.Sprintf("bcrypt cost, %d to %d", minBcryptCost, bcrypt.MaxCost))
}

func newHtpasswdCmd() *cobra.Command {
	var (
		pw      passwordOptions
		file    string
		del     bool
		compatB bool
		compatb bool
		compatn bool
	)
	cmd := &cobra.Command{
		Use:   "htpasswd [flags] USER [PASSWORD]",
		Short: "Make a bcrypt htpasswd entry, or add one to a file",
		Long: `Print an htpasswd line "USER:BCRYPT-HASH" for USER, as "htpasswd -Bbn" does,
for registry:2's auth.htpasswd, berth's own htpasswd auth, nginx or Apache.
This replaces "docker run --entrypoint htpasswd registry:2 -Bbn USER PASSWORD".

With --file, add USER to the file or replace USER's entry, keeping every
other line as it was; with --file and --delete, remove USER. The file is
replaced atomically (written beside it, then renamed), keeping its mode and
owner; a new file gets mode 0644 less the umask, as htpasswd makes it.

The password is the PASSWORD argument, or the first line of standard input
with --password-stdin, or else asked for twice on the terminal without
echo. An argument is visible to other users in the process list and stays
in your shell history: prefer the prompt or --password-stdin.

Hashes use bcrypt with cost 10 or more (htpasswd's default is 5). The
htpasswd flags -B, -b and -n are accepted and change nothing, so
"berth htpasswd -Bbn USER PASSWORD" works as before.`,
		Example: `  # print an entry (like htpasswd -Bbn), asking for the password
  berth htpasswd alice >> /etc/docker/registry/htpasswd

  # add or update a user in a file, password from a secret store
  pass show registry/ci | berth htpasswd --password-stdin --file auth/htpasswd ci

  # remove a user
  berth htpasswd --delete --file auth/htpasswd alice

  # in the container image, instead of registry:2's htpasswd
  docker run --rm berth htpasswd -Bbn testuser testpassword > auth/htpasswd`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			if err := validUser(user); err != nil {
				return err
			}
			if del {
				if file == "" {
					return errors.New("--delete needs --file")
				}
				if len(args) > 1 || pw.stdin {
					return errors.New("--delete takes no password")
				}
				return deleteUser(file, user, cmd.ErrOrStderr())
			}
			line, err := entryFor(cmd, &pw, user, args[1:])
			if err != nil {
				return err
			}
			if file == "" {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), line)
				return err
			}
			return addUser(file, user, line, cmd.ErrOrStderr())
		},
	}
	pw.addFlags(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "add or replace USER's entry in this htpasswd file instead of printing it")
	cmd.Flags().BoolVarP(&del, "delete", "D", false, "delete USER from --file")
	cmd.Flags().BoolVarP(&compatB, "bcrypt", "B", false, "accepted for htpasswd compatibility: berth always uses bcrypt")
	cmd.Flags().BoolVarP(&compatb, "batch", "b", false, "accepted for htpasswd compatibility: the password is the second argument")
	cmd.Flags().BoolVarP(&compatn, "stdout", "n", false, "accepted for htpasswd compatibility: without --file the entry is printed")
	for _, f := range []string{"bcrypt", "batch", "stdout"} {
		cmd.Flags().MarkHidden(f)
	}
	return cmd
}

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, change or remove users in an htpasswd file",
		Long: `Manage the users of an htpasswd file (auth.htpasswd.path) with bcrypt
hashes. Each change rewrites the file atomically and keeps every other line.`,
		Example: `  berth user add --file /etc/docker/registry/htpasswd alice
  berth user list --file /etc/docker/registry/htpasswd
  berth user del --file /etc/docker/registry/htpasswd alice`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var pw passwordOptions
	var addFile string
	add := &cobra.Command{
		Use:   "add --file FILE USER [PASSWORD]",
		Short: "Add a user, or set an existing user's password",
		Long: `Add USER to the htpasswd file FILE (created if missing), or replace the
password of an existing USER. The password is the PASSWORD argument, the
first line of standard input with --password-stdin, or else asked for on
the terminal without echo.`,
		Example: `  berth user add --file /etc/docker/registry/htpasswd alice
  echo "$CI_PASSWORD" | berth user add --file htpasswd --password-stdin ci`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validUser(args[0]); err != nil {
				return err
			}
			line, err := entryFor(cmd, &pw, args[0], args[1:])
			if err != nil {
				return err
			}
			return addUser(addFile, args[0], line, cmd.ErrOrStderr())
		},
	}
	pw.addFlags(add)
	add.Flags().StringVarP(&addFile, "file", "f", "", "htpasswd file (required)")
	add.MarkFlagRequired("file")

	var delFile string
	del := &cobra.Command{
		Use:     "del --file FILE USER",
		Aliases: []string{"delete", "rm"},
		Short:   "Remove a user",
		Long:    `Remove USER's entry from the htpasswd file FILE. It is an error if USER has none.`,
		Example: `  berth user del --file /etc/docker/registry/htpasswd alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validUser(args[0]); err != nil {
				return err
			}
			return deleteUser(delFile, args[0], cmd.ErrOrStderr())
		},
	}
	del.Flags().StringVarP(&delFile, "file", "f", "", "htpasswd file (required)")
	del.MarkFlagRequired("file")

	var listFile string
	list := &cobra.Command{
		Use:     "list --file FILE",
		Aliases: []string{"ls"},
		Short:   "List the users of an htpasswd file",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(listFile)
			if err != nil {
				return err
			}
			for _, l := range strings.Split(string(data), "\n") {
				if u, ok := entryUser(l); ok {
					fmt.Fprintln(cmd.OutOrStdout(), u)
				}
			}
			return nil
		},
	}
	list.Flags().StringVarP(&listFile, "file", "f", "", "htpasswd file (required)")
	list.MarkFlagRequired("file")

	cmd.AddCommand(add, del, list)
	return cmd
}

// validUser refuses names htpasswd files cannot hold.
func validUser(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case strings.ContainsAny(user, ":"):
		return fmt.Errorf("user name %q contains ':', which htpasswd files use as separator", user)
	case strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("user name %q contains a control character", user)
	case strings.TrimSpace(user) != user || strings.HasPrefix(user, "#"):
		return fmt.Errorf("user name %q starts or ends with a space, or starts with '#'", user)
	}
	return nil
}

// entryFor gets the password from args, stdin or the terminal and returns
// the htpasswd line for user.
func entryFor(cmd *cobra.Command, o *passwordOptions, user string, args []string) (string, error) {
	if o.cost < minBcryptCost || o.cost > bcrypt.MaxCost {
		return "", fmt.Errorf("--cost must be between %d and %d", minBcryptCost, bcrypt.MaxCost)
	}
	var password string
	switch {
	case len(args) > 0 && o.stdin:
		return "", errors.New("give the password either as an argument or with --password-stdin, not both")
	case len(args) > 0:
		password = args[0]
	case o.stdin:
		p, err := readPasswordLine(cmd.InOrStdin())
		if err != nil {
			return "", err
		}
		password = p
	default:
		p, err := promptPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), user)
		if err != nil {
			return "", err
		}
		password = p
	}
	if password == "" {
		return "", errors.New("empty password")
	}
	if len(password) > 72 {
		return "", errors.New("password longer than 72 bytes: bcrypt would ignore the rest")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), o.cost)
	if err != nil {
		return "", err
	}
	return user + ":" + string(hash), nil
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("--password-stdin: standard input is empty")
		}
		return "", fmt.Errorf("--password-stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// promptPassword asks twice for a password on the terminal, without echo.
func promptPassword(in io.Reader, out io.Writer, user string) (string, error) {
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		return "", errors.New("no password: give it as an argument, pipe it with --password-stdin, or run in a terminal to be asked")
	}
	p1, err := readNoEcho(f, out, "Password for "+user+": ")
	if err != nil {
		return "", err
	}
	p2, err := readNoEcho(f, out, "Retype password: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("passwords do not match")
	}
	return p1, nil
}

// entryUser returns the user of an htpasswd line, if it is an entry.
func entryUser(line string) (string, bool) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
		return "", false
	}
	u, _, ok := strings.Cut(line, ":")
	return u, ok
}

// addUser replaces user's entry in file with line, or appends it.
func addUser(file, user, line string, stderr io.Writer) error {
	var replaced bool
	err := rewriteFile(file, true, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		for _, l := range lines {
			if u, ok := entryUser(l); ok && u == user {
				if !replaced {
					out = append(out, line)
					replaced = true
				}
				continue // a duplicate entry would shadow or confuse
			}
			out = append(out, l)
		}
		if !replaced {
			out = append(out, line)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	if replaced {
		fmt.Fprintf(stderr, "updated password of %s in %s\n", user, file)
	} else {
		fmt.Fprintf(stderr, "added %s to %s\n", user, file)
	}
	return nil
}

// deleteUser removes user's entry from file.
func deleteUser(file, user string, stderr io.Writer) error {
	err := rewriteFile(file, false, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		found := false
		for _, l := range lines {
			if u, ok := entryUser(l); ok && u == user {
				found = true
				continue
			}
			out = append(out, l)
		}
		if !found {
			return nil, fmt.Errorf("%s: no user %q", file, user)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "deleted %s from %s\n", user, file)
	return nil
}

// rewriteFile applies edit to the lines of file and replaces the file
// atomically: the new content is written to a temporary file in the same
// directory, synced, given the old file's mode and owner, and renamed over
// it. If create, a missing file is treated as empty.
func rewriteFile(file string, create bool, edit func([]string) ([]string, error)) error {
	data, err := os.ReadFile(file)
	mode := fs.FileMode(0o666) // less the umask, as htpasswd(1) creates it
	var owner *syscall.Stat_t
	switch {
	case err == nil:
		st, err := os.Stat(file)
		if err != nil {
			return err
		}
		mode = st.Mode().Perm()
		owner, _ = st.Sys().(*syscall.Stat_t)
	case errors.Is(err, fs.ErrNotExist) && create:
	default:
		return err
	}
	var lines []string
	if len(data) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	lines, err = edit(lines)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteByte('\n')
	}

	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return err
	}
	if owner != nil {
		// Keep the owner, so a file root edits stays readable by the
		// registry's user; only root can do this, and only root needs to.
		tmp.Chown(int(owner.Uid), int(owner.Gid))
		if err := tmp.Chmod(mode); err != nil {
			return err
		}
	} else if err := applyUmask(tmp, mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	committed = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// applyUmask gives f mode less the process umask, like open(2) would.
func applyUmask(f *os.File, mode fs.FileMode) error {
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	return f.Chmod(mode &^ fs.FileMode(mask))
}
