package content

import (
	"errors"
	"fmt"
)

// Code is an error code from the OCI Distribution Spec. The content model
// speaks in these codes because they are the domain's own vocabulary; the
// HTTP layer only maps them to statuses.
type Code string

const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeTagInvalid          Code = "TAG_INVALID"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeDenied              Code = "DENIED"
	// CodeRangeInvalid is not a spec code: an upload chunk that does not start
	// where the upload ends. The spec answers it with 416 and no fixed code;
	// the HTTP layer reports it as BLOB_UPLOAD_INVALID.
	CodeRangeInvalid Code = "RANGE_INVALID"
	// CodeTooLarge marks a manifest over the configured size limit.
	CodeTooLarge Code = "TOO_LARGE"
)

// Error is a client-visible failure with a spec code and a message that is
// safe to show the client (it never contains storage paths).
type Error struct {
	Code    Code
	Message string
	Detail  any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Is makes errors.Is(err, content.ErrBlobUnknown) match any Error with the
// same code, whatever its message.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Message == ""
}

func newError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is.
var (
	ErrBlobUnknown       = &Error{Code: CodeBlobUnknown}
	ErrBlobUploadUnknown = &Error{Code: CodeBlobUploadUnknown}
	ErrManifestUnknown   = &Error{Code: CodeManifestUnknown}
	ErrNameUnknown       = &Error{Code: CodeNameUnknown}
	ErrDigestInvalid     = &Error{Code: CodeDigestInvalid}
	ErrRangeInvalid      = &Error{Code: CodeRangeInvalid}
)
