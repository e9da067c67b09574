package content

import (
	_ "crypto/sha512" // registers sha384/sha512 with go-digest
	"strings"

	"github.com/opencontainers/go-digest"
)

// MaxNameLength is the longest repository name accepted, as in distribution.
const MaxNameLength = 255

// ValidateName reports whether name is an acceptable repository name.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return newError(CodeNameInvalid, "repository name must be 1 to %d characters", MaxNameLength)
	}
	if !isName(name) {
		return newError(CodeNameInvalid, "invalid repository name %q: components must be lower case letters and digits separated by '.', '_', '__' or '-'", truncate(name))
	}
	// Names beginning with "_" components are reserved by the layout
	// (_layers, _manifests, _uploads); the regexp already forbids them.
	return nil
}

// ValidateTag reports whether tag is an acceptable tag.
func ValidateTag(tag string) error {
	if !isTag(tag) {
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

// Repository names follow the distribution spec's grammar,
//
//	component ("/" component)*   component = [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
//
// and tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. Both are checked on every
// request, so they are written as loops rather than regular expressions;
// names_test.go checks them against the regular expressions.

func isName(s string) bool {
	i := 0
	for {
		// One component: a run of [a-z0-9], then separator + run, repeated.
		if i >= len(s) || !isLowerAlnum(s[i]) {
			return false
		}
		for i < len(s) && isLowerAlnum(s[i]) {
			i++
		}
		for i < len(s) && s[i] != '/' {
			switch s[i] {
			case '.':
				i++
			case '_':
				i++
				if i < len(s) && s[i] == '_' {
					i++
				}
			case '-':
				for i < len(s) && s[i] == '-' {
					i++
				}
			default:
				return false
			}
			if i >= len(s) || !isLowerAlnum(s[i]) {
				return false
			}
			for i < len(s) && isLowerAlnum(s[i]) {
				i++
			}
		}
		if i == len(s) {
			return true
		}
		i++ // the "/" before the next component
	}
}

func isTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
