package s3

import (
	"context"

	"github.com/minio/minio-go/v7"
)

// parentRaceAttempts bounds how often one object write is tried when the
// server reports the race described at retryParentRace.
const parentRaceAttempts = 4

// retryParentRace runs write, a request that creates one object (PUT,
// server-side copy), again while the server answers 409
// ExistingObjectIsDirectory.
//
// S3 servers that keep objects as files (versitygw's posix backend) create
// an object's parent directories, then link the object into them, and
// remove directories left empty when an object is deleted. A delete in the
// same directory between those two steps (one upload of a repository
// finishing while another starts) makes the link fail, which they report as
// that error. The key is not a directory: no key of the registry layout is
// a prefix of another key followed by "/". So the answer is that race, and
// writing again succeeds; minio-go does not retry a 409 by itself.
func retryParentRace(ctx context.Context, write func() error) error {
	var err error
	for range parentRaceAttempts {
		err = write()
		if err == nil || ctx.Err() != nil || minio.ToErrorResponse(err).Code != "ExistingObjectIsDirectory" {
			return err
		}
	}
	return err
}
