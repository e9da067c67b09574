package content

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"
)

// PurgeResult counts what PurgeUploads found and did.
type PurgeResult struct {
	Found  int   // upload directories looked at
	Purged int   // uploads deleted (in a dry run: that would have been)
	Bytes  int64 // the data bytes those uploads held
	Busy   int   // skipped: a request on this instance is using them
	Errors int   // skipped: could not be read or deleted (each is logged)
}

// PurgeUploads deletes the uploads that started before olderThan: the
// abandoned ones a client never finished or cancelled, which registry:2's
// storage.maintenance.uploadpurging removes too. It walks every
// repository's "_uploads" directory, including repositories that hold
// nothing else yet (a first push that never finished). With dryRun it only
// logs and counts what it would delete.
//
// An upload that fails to be read or deleted is logged, counted and
// skipped; the error returned is for what stops the whole run: the
// repositories tree cannot be listed, ctx ended, or the registry is
// read-only.
//
// Purging needs no index (uploads are not in it), so it may run while the
// index is built in the background.
func (r *Registry) PurgeUploads(ctx context.Context, olderThan time.Time, dryRun bool) (PurgeResult, error) {
	var res PurgeResult
	if err := r.checkWritable(); err != nil {
		return res, err
	}
	start := time.Now()
	err := r.purgeTree(ctx, reposRoot(), olderThan, dryRun, &res)
	if err == nil {
		err = ctx.Err()
	}
	msg := "upload purge done"
	if dryRun {
		msg = "upload purge done (dry run: nothing deleted)"
	}
	r.log.Info(msg, "found", res.Found, "purged", res.Purged, "bytes", res.Bytes,
		"busy", res.Busy, "errors", res.Errors, "older_than", olderThan.UTC().Format(time.RFC3339),
		"duration", time.Since(start).Round(time.Millisecond), "err", err)
	if err != nil {
		return res, fmt.Errorf("purge uploads: %w", err)
	}
	return res, nil
}

// purgeTree purges the "_uploads" directories at and below dir, which is
// reposRoot or a directory inside it (see findRepositories). Only a
// failure to list reposRoot itself, or the end of ctx, is returned: a
// subtree that cannot be read is logged and skipped.
func (r *Registry) purgeTree(ctx context.Context, dir string, olderThan time.Time, dryRun bool, res *PurgeResult) error {
	children, err := r.driver.List(ctx, dir)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, child := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		base := path.Base(child)
		switch {
		case base == "_uploads" && dir != reposRoot():
			repo := strings.TrimPrefix(dir, reposRoot()+"/")
			r.purgeRepoUploads(ctx, repo, child, olderThan, dryRun, res)
		case strings.HasPrefix(base, "_"):
			// _manifests, _layers: a repository's own data.
		default:
			fi, err := r.driver.Stat(ctx, child)
			if err != nil || !fi.IsDir {
				continue
			}
			if err := r.purgeTree(ctx, child, olderThan, dryRun, res); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.Errors++
				r.log.Warn("upload purge: cannot list a directory, skipped", "dir", child, "err", err)
			}
		}
	}
	return nil
}

// purgeRepoUploads purges the old uploads in dir, repo's "_uploads".
func (r *Registry) purgeRepoUploads(ctx context.Context, repo, dir string, olderThan time.Time, dryRun bool, res *PurgeResult) {
	ids, err := r.driver.List(ctx, dir)
	if isNotFound(err) || ctx.Err() != nil {
		return
	}
	if err != nil {
		res.Errors++
		r.log.Warn("upload purge: cannot list uploads, skipped", "repo", repo, "err", err)
		return
	}
	for _, p := range ids {
		if ctx.Err() != nil {
			return
		}
		id := path.Base(p)
		res.Found++
		if err := r.purgeUpload(ctx, repo, id, olderThan, dryRun, res); err != nil {
			if ctx.Err() != nil {
				return
			}
			res.Errors++
			r.log.Warn("upload purge: upload skipped", "repo", repo, "upload", id, "err", err)
		}
	}
}

// purgeUpload deletes one upload if it started before olderThan. It holds
// the upload's lock meanwhile, so no PATCH or PUT on this instance is half
// way through it; an upload whose lock is held is in use right now, hence
// not abandoned, and is left for the next run rather than waited for (a
// chunk may take long to arrive).
func (r *Registry) purgeUpload(ctx context.Context, repo, id string, olderThan time.Time, dryRun bool, res *PurgeResult) error {
	unlock, ok := r.uploadLocks.tryLock(repo + "/" + id)
	if !ok {
		res.Busy++
		r.log.Debug("upload purge: upload in use, skipped", "repo", repo, "upload", id)
		return nil
	}
	defer unlock()
	started, size, err := r.uploadStart(ctx, repo, id)
	if isNotFound(err) {
		return nil // finished or cancelled since it was listed
	}
	if err != nil {
		return fmt.Errorf("purge upload %s/%s: %w", repo, id, err)
	}
	if !started.Before(olderThan) {
		return nil
	}
	attrs := []any{"repo", repo, "upload", id, "started", started.UTC().Format(time.RFC3339), "bytes", size}
	if dryRun {
		r.log.Info("upload purge: would purge upload (dry run)", attrs...)
	} else {
		if err := r.driver.Delete(ctx, uploadDir(repo, id)); err != nil && !isNotFound(err) {
			return fmt.Errorf("purge upload %s/%s: %w", repo, id, err)
		}
		r.log.Info("upload purge: purged upload", attrs...)
	}
	res.Purged++
	res.Bytes += size
	return nil
}

// uploadStart tells when an upload counts as started, and how many data
// bytes it holds.
//
// The start is its "startedat" marker, as for registry:2, even while the
// upload is still being written to: a client pushing for longer than the
// purge age loses the upload (a week by default). Without a readable
// marker (a monolithic PutBlob writes none; a crash may lose it, see
// StartUpload) it is the newest modification time of anything in the
// upload's directory, normally its data, which each chunk rewrites: an
// upload is then only purged when nothing in it changed since the cutoff,
// whatever is left of it. An empty directory (a filesystem keeps one)
// dates from its own modification time. A driver that reports no times at
// all makes such leftovers count as old, and they are purged: with neither
// marker nor data, no client can continue them anyway (UploadStatus).
//
// ErrNotFound means the upload's directory is gone.
func (r *Registry) uploadStart(ctx context.Context, repo, id string) (time.Time, int64, error) {
	var size int64
	fi, err := r.driver.Stat(ctx, uploadDataPath(repo, id))
	switch {
	case err == nil:
		size = fi.Size
	case !isNotFound(err):
		return time.Time{}, 0, err
	}
	stamp, err := r.driver.GetContent(ctx, uploadStartedAtPath(repo, id))
	switch {
	case err == nil:
		if t, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(stamp))); perr == nil {
			return t, size, nil
		}
		r.log.Warn("upload purge: unreadable start marker, dating the upload by its files", "repo", repo, "upload", id)
	case !isNotFound(err):
		return time.Time{}, 0, err
	}
	newest, err := r.lastModified(ctx, uploadDir(repo, id))
	return newest, size, err
}

// lastModified is the newest modification time of p and everything below
// it; ErrNotFound if there is nothing at p.
func (r *Registry) lastModified(ctx context.Context, p string) (time.Time, error) {
	fi, err := r.driver.Stat(ctx, p)
	if err != nil {
		return time.Time{}, err
	}
	newest := fi.ModTime
	if !fi.IsDir {
		return newest, nil
	}
	children, err := r.driver.List(ctx, p)
	if err != nil && !isNotFound(err) {
		return time.Time{}, err
	}
	for _, c := range children {
		t, err := r.lastModified(ctx, c)
		if isNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return time.Time{}, err
		}
		if t.After(newest) {
			newest = t
		}
	}
	return newest, nil
}
