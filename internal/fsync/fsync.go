// Package fsync holds the one durability step both the filesystem driver
// and the embedded index need: making a directory's entries (a file just
// created, renamed or removed in it) survive a crash.
package fsync

import "os"

// Dir syncs the directory dir, so that entries created, renamed or removed
// in it are on disk.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
