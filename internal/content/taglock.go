package content

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// lockTag serialises changes to one tag: inside this process with a key
// lock, and across processes too when the index is shared (TagLocker). If a
// change of the tag was cut short earlier (a crash between the storage
// write and the index write, or a failed index write), the tag is first
// re-read from storage into the index. done must be called with the
// change's outcome: a failed change stays noted, so the next holder re-reads
// the tag from storage in turn.
func (r *Registry) lockTag(ctx context.Context, repo, tag string) (done func(error), err error) {
	unlock := r.tagLocks.lock(repo + ":" + tag)
	tl, ok := r.index.(TagLocker)
	if !ok {
		return func(error) { unlock() }, nil
	}
	release, unfinished, err := tl.LockTag(ctx, repo, tag)
	if err != nil {
		unlock()
		return nil, err
	}
	if unfinished {
		if err := r.resyncTag(ctx, repo, tag); err != nil {
			release(false)
			unlock()
			return nil, fmt.Errorf("tag %s:%s: repair an unfinished change: %w", repo, tag, err)
		}
		r.log.Info("repaired an unfinished tag change from storage", "repo", repo, "tag", tag)
	}
	return func(err error) {
		release(err == nil)
		unlock()
	}, nil
}

// resyncTag makes the index say what storage says about a tag. The caller
// holds the tag's lock.
func (r *Registry) resyncTag(ctx context.Context, repo, tag string) error {
	d, err := r.readLink(ctx, tagCurrentLinkPath(repo, tag))
	if isNotFound(err) {
		return r.index.DeleteTag(ctx, repo, tag)
	}
	if err != nil {
		return err
	}
	if _, err := r.readLink(ctx, revisionLinkPath(repo, d)); isNotFound(err) {
		return r.index.DeleteTag(ctx, repo, tag) // dangling: not served
	} else if err != nil {
		return err
	}
	if _, ok, err := r.index.Manifest(ctx, repo, d); err != nil {
		return err
	} else if !ok {
		rec, ok, err := r.describeStored(ctx, repo, d)
		if err != nil {
			return err
		}
		if !ok {
			return r.index.DeleteTag(ctx, repo, tag)
		}
		if err := r.index.PutManifest(ctx, repo, rec); err != nil {
			return err
		}
	}
	return r.index.PutTag(ctx, repo, tag, d)
}

// learnTag records in the index a tag found in storage on an index miss,
// unless it moved or went away meanwhile.
func (r *Registry) learnTag(ctx context.Context, repo, tag string, d digest.Digest) (err error) {
	done, err := r.lockTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	cur, err := r.readLink(ctx, tagCurrentLinkPath(repo, tag))
	if isNotFound(err) || (err == nil && cur != d) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve %s:%s: %w", repo, tag, err)
	}
	return r.index.PutTag(ctx, repo, tag, d)
}

// RepairTags re-reads from storage every tag whose change a process sharing
// the index left unfinished (it died between writing storage and the
// index), so storage and index agree again. Only indexes shared between
// processes (TagLocker) keep such notes; for others it does nothing. A
// read-only registry does not repair: it never writes.
func (r *Registry) RepairTags(ctx context.Context) (int, error) {
	tl, ok := r.index.(TagLocker)
	if !ok || r.opts.ReadOnly {
		return 0, nil
	}
	tags, err := tl.UnfinishedTags(ctx)
	if err != nil {
		return 0, err
	}
	for _, t := range tags {
		// lockTag repairs the tag if its change is still unfinished once
		// the lock is ours (one in progress elsewhere finishes first).
		done, err := r.lockTag(ctx, t.Repo, t.Tag)
		if err != nil {
			return 0, err
		}
		done(nil)
	}
	return len(tags), nil
}
