package content

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

const testUploadID = "3f1d1d5c-0c53-4a4e-9e2a-4c4c2c1e0c11"

// wantCode fails unless err is a content.Error with the given code.
func wantCode(t *testing.T, what string, err error, code Code) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Errorf("%s: error %v, want code %s", what, err, code)
	}
}

// namePaths are the storage paths a repository name is joined into.
func namePaths(name string) []string {
	d := digest.FromString("x")
	return []string{
		repoPath(name), layerLinkPath(name, d), revisionLinkPath(name, d),
		revisionMediaTypePath(name, d), tagCurrentLinkPath(name, "latest"),
		tagIndexLinkPath(name, "latest", d), uploadDataPath(name, testUploadID),
		uploadStartedAtPath(name, testUploadID), hashStatePath(name, testUploadID, 42),
	}
}

func checkPaths(t *testing.T, what string, paths []string) {
	t.Helper()
	for _, p := range paths {
		if err := storage.CheckPath(p); err != nil {
			t.Errorf("%s: storage path %q refused: %v", what, p, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	valid := []string{
		"a", "0", "a0", "library/ubuntu", "a/b/c/d", "a.b", "a_b", "a__b", "a-b", "a---b",
		"a.b-c_d__e/f", "x/blobs/y", "x/manifests", "tags", "uploads/list", "v2",
		strings.Repeat("a", MaxNameLength),
		strings.Repeat("ab/", 84) + "abc",
	}
	invalid := []string{
		"", ".", "..", "../x", "a/../b", "x/..", "./x", "a/./b", "/a", "a/", "a//b", "/",
		"../../../../etc/passwd", "a/../../b", "...",
		"Foo", "foo/Bar", "A",
		"_a", "a_", "a___b", "-a", "a-", ".a", "a.", "a..b", "a.-b", "a-.b", "a._b",
		"a b", "a\tb", "a\nb", "a\n", "a\x00b", `a\b`, "a:b", "a@b", "a%2fb", "%2e%2e", "ä", "a+b",
		"x/_manifests", "x/_layers/y", "_uploads",
		strings.Repeat("a", MaxNameLength+1),
		strings.Repeat("ab/", 85) + "a",
	}
	for _, name := range valid {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
			continue
		}
		checkPaths(t, "name "+name, namePaths(name))
	}
	for _, name := range invalid {
		wantCode(t, "ValidateName("+name+")", ValidateName(name), CodeNameInvalid)
	}
}

func TestValidateTag(t *testing.T) {
	valid := []string{
		"latest", "v1", "1", "_", "A", "Z9", "v1.0.0-rc.1_build", "a..b", "a--", "_x", "0.",
		strings.Repeat("t", 128),
	}
	invalid := []string{
		"", ".", "..", ".a", "-a", "a/b", "../a", "a:b", "a@b", "a b", "a\n", "a\x00",
		"ä", "a+b", "a%2f", strings.Repeat("t", 129),
	}
	d := digest.FromString("x")
	for _, tag := range valid {
		if err := ValidateTag(tag); err != nil {
			t.Errorf("ValidateTag(%q) = %v, want nil", tag, err)
			continue
		}
		if IsDigestReference(tag) {
			t.Errorf("tag %q taken for a digest", tag)
		}
		checkPaths(t, "tag "+tag, []string{
			tagDir("repo", tag), tagCurrentLinkPath("repo", tag), tagIndexLinkPath("repo", tag, d),
		})
	}
	for _, tag := range invalid {
		wantCode(t, "ValidateTag("+tag+")", ValidateTag(tag), CodeTagInvalid)
	}
}

func TestParseDigest(t *testing.T) {
	valid := []string{
		digest.FromString("x").String(),
		digest.SHA512.FromString("x").String(),
		"sha256:" + strings.Repeat("0", 64),
	}
	invalid := []string{
		"", "sha256", "sha256:", ":", ":" + strings.Repeat("a", 64),
		"sha256:xyz", "sha256:" + strings.Repeat("a", 63), "sha256:" + strings.Repeat("a", 65),
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("g", 64),
		"sha512:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("a", 127),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha384:" + strings.Repeat("a", 96), // go-digest knows it; berth does not
		"sha1:" + strings.Repeat("a", 40),
		"SHA256:" + strings.Repeat("a", 64),
		"sha256:../../../../" + strings.Repeat("a", 52),
		"sha256:" + strings.Repeat("a", 62) + "/.",
		"sha256:" + strings.Repeat("a", 64) + "/",
		"sha256:" + strings.Repeat("a", 64) + "\n",
		" sha256:" + strings.Repeat("a", 64),
		"../sha256:" + strings.Repeat("a", 64),
		"sha256:" + strings.Repeat("a", 32) + ":" + strings.Repeat("a", 31),
	}
	for _, s := range valid {
		d, err := ParseDigest(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDigest(%q) = %q, %v", s, d, err)
			continue
		}
		if !IsDigestReference(s) {
			t.Errorf("digest %q not taken for a digest reference", s)
		}
		checkPaths(t, "digest "+s, []string{
			blobDataPath(d), layerLinkPath("repo", d), revisionLinkPath("repo", d),
			revisionMediaTypePath("repo", d), tagIndexLinkPath("repo", "latest", d),
			uploadHashStateDir("repo", testUploadID, d.Algorithm()),
		})
	}
	for _, s := range invalid {
		d, err := ParseDigest(s)
		if d != "" {
			t.Errorf("ParseDigest(%q) returned %q with its error", s, d)
		}
		wantCode(t, "ParseDigest("+s+")", err, CodeDigestInvalid)
	}
}

// FuzzAcceptedNamesArePaths: whatever ValidateName, ValidateTag or
// ParseDigest accepts is safe to join into a storage path. The seeds run as
// a normal test; `go test -fuzz` explores further.
func FuzzAcceptedNamesArePaths(f *testing.F) {
	for _, s := range []string{
		"a", "a/b", "../a", "a/../b", "a..b", "a.b/c_d", "latest", ".", "..", "_",
		digest.FromString("x").String(), "sha256:..", "a/./b", "a%2f..", "v1.0", "A/b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) == nil {
			checkPaths(t, "name "+s, namePaths(s))
		}
		if ValidateTag(s) == nil {
			checkPaths(t, "tag "+s, []string{tagCurrentLinkPath("repo", s), tagIndexLinkPath("repo", s, digest.FromString("x"))})
		}
		if d, err := ParseDigest(s); err == nil {
			checkPaths(t, "digest "+s, []string{blobDataPath(d), layerLinkPath("repo", d), revisionLinkPath("repo", d)})
		}
	})
}

// The hand-written grammar checks must accept exactly what the spec's
// regular expressions accept.
var (
	specNameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	specNameRE        = regexp.MustCompile(`^` + specNameComponent + `(?:/` + specNameComponent + `)*$`)
	specTagRE         = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

func FuzzGrammarMatchesSpecRegexps(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a__b", "a___b", "a.-b", "a--b", "a_", "_a", "a//b", "A", "v1.0", ".v", "-v", "a/", "/a", "foo-bar/baz_qux/x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isName(s), specNameRE.MatchString(s); got != want {
			t.Errorf("isName(%q) = %v, spec grammar says %v", s, got, want)
		}
		if got, want := isTag(s), specTagRE.MatchString(s); got != want {
			t.Errorf("isTag(%q) = %v, spec grammar says %v", s, got, want)
		}
	})
}
