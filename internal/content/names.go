package content

import (
	_ "crypto/sha512" // registers sha384/sha512 with go-digest
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Repository names follow the distribution spec: path components of lower
// case alphanumerics joined by single separators, components joined by "/".
var (
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRE        = regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	tagRE         = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

// MaxNameLength is the longest repository name accepted, as in distribution.
const MaxNameLength = 255

// ValidateName reports whether name is an acceptable repository name.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return newError(CodeNameInvalid, "repository name must be 1 to %d characters", MaxNameLength)
	}
	if !nameRE.MatchString(name) {
		return newError(CodeNameInvalid, "invalid repository name %q: components must be lower case letters and digits separated by '.', '_', '__' or '-'", truncate(name))
	}
	// Names beginning with "_" components are reserved by the layout
	// (_layers, _manifests, _uploads); the regexp already forbids them.
	return nil
}

// ValidateTag reports whether tag is an acceptable tag.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return newError(CodeTagInvalid, "invalid tag %q: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'", truncate(tag))
	}
	return nil
}

// ParseDigest parses and validates a digest whose algorithm berth supports
// (sha256, sha512). The encoded part is checked for length and alphabet, so
// a valid digest is always safe to use in a storage path.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(CodeDigestInvalid, "invalid digest %q: %v", truncate(s), err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
	default:
		return "", newError(CodeDigestInvalid, "unsupported digest algorithm %q", d.Algorithm())
	}
	return d, nil
}

// IsDigestReference reports whether a manifest reference is a digest rather
// than a tag: tags cannot contain ':'.
func IsDigestReference(ref string) bool { return strings.Contains(ref, ":") }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
