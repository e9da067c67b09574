package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// BlobInfo describes a blob visible in a repository.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
}

// Blob reports a blob that is linked into repo. A blob stored for another
// repository is not visible here: repositories only see what was pushed or
// mounted into them.
func (r *Registry) Blob(ctx context.Context, repo string, d digest.Digest) (BlobInfo, error) {
	if err := ValidateName(repo); err != nil {
		return BlobInfo{}, err
	}
	linked, err := r.exists(ctx, layerLinkPath(repo, d))
	if err != nil {
		return BlobInfo{}, fmt.Errorf("stat blob link %s@%s: %w", repo, d, err)
	}
	if !linked {
		return BlobInfo{}, newError(CodeBlobUnknown, "blob %s unknown to repository %s", d, repo)
	}
	fi, err := r.driver.Stat(ctx, blobDataPath(d))
	if isNotFound(err) {
		return BlobInfo{}, newError(CodeBlobUnknown, "blob %s unknown to repository %s", d, repo)
	}
	if err != nil {
		return BlobInfo{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return BlobInfo{Digest: d, Size: fi.Size}, nil
}

// ReadBlob streams a blob's bytes from offset. The caller has checked
// visibility with Blob. The filesystem driver returns an *os.File here, which
// the HTTP layer turns into sendfile.
func (r *Registry) ReadBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := r.driver.Reader(ctx, blobDataPath(d), offset)
	if isNotFound(err) {
		return nil, newError(CodeBlobUnknown, "blob %s unknown", d)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return rc, nil
}

// DeleteBlob unlinks a blob from repo. The bytes stay in the shared blob
// store for other repositories until garbage collection.
func (r *Registry) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := r.checkDeletable(); err != nil {
		return err
	}
	if _, err := r.Blob(ctx, repo, d); err != nil {
		return err
	}
	if err := r.driver.Delete(ctx, layerLinkDir(repo, d)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete blob link %s@%s: %w", repo, d, err)
	}
	return nil
}

// MountBlob links a blob that is visible in repository from into repo
// without moving any bytes, and describes it. It reports false, with no
// error, when there is nothing to mount; the client then uploads as usual.
// A mount without from (automatic content discovery) is never done: it
// would let anyone who knows a digest read a blob from a repository they
// cannot see.
func (r *Registry) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (BlobInfo, bool, error) {
	if err := r.checkWritable(); err != nil {
		return BlobInfo{}, false, err
	}
	if err := ValidateName(repo); err != nil {
		return BlobInfo{}, false, err
	}
	if from == "" {
		return BlobInfo{}, false, nil
	}
	if err := ValidateName(from); err != nil {
		return BlobInfo{}, false, err
	}
	info, err := r.Blob(ctx, from, d)
	if err != nil {
		if isCode(err, CodeBlobUnknown) {
			return BlobInfo{}, false, nil
		}
		return BlobInfo{}, false, err
	}
	if err := r.writeLink(ctx, layerLinkPath(repo, d), d); err != nil {
		return BlobInfo{}, false, fmt.Errorf("mount blob %s into %s: %w", d, repo, err)
	}
	return info, true, nil
}

func isCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// urlSigner is implemented by drivers that can hand out a time-limited URL
// for an object (S3 presigned URLs, Swift temp URLs), so clients download
// blobs from the object store directly.
type urlSigner interface {
	URLFor(ctx context.Context, path string, expiry time.Duration) (string, error)
}

// BlobURLExpiry is how long a redirect URL for a blob stays valid.
const BlobURLExpiry = 20 * time.Minute

// BlobURL returns a direct download URL for a blob when the storage driver
// can make one; ok is false when it cannot. The caller has checked the
// blob's visibility with Blob.
func (r *Registry) BlobURL(ctx context.Context, d digest.Digest) (url string, ok bool, err error) {
	s, can := r.driver.(urlSigner)
	if !can {
		return "", false, nil
	}
	url, err = s.URLFor(ctx, blobDataPath(d), BlobURLExpiry)
	if errors.Is(err, errors.ErrUnsupported) {
		return "", false, nil // e.g. a Swift cluster without temp URLs
	}
	if err != nil {
		return "", false, fmt.Errorf("blob %s url: %w", d, err)
	}
	return url, true, nil
}
