package content

import (
	"bytes"
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// The on-disk (or in-bucket) layout is distribution's, so a tree written by
// registry:2 is served as it is and berth's tree can be handed back to it:
//
//	/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data
//	/docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//	/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat,hashstates/<alg>/<offset>}
//
// berth adds one file distribution never reads: "mediatype" beside a
// revision's link, written only when a manifest body carries no mediaType
// field, so the Content-Type it was pushed with survives an index rebuild.
const rootPath = "/docker/registry/v2"

func blobDataPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join(rootPath, "blobs", string(d.Algorithm()), hex[:2], hex, "data")
}

func reposRoot() string { return path.Join(rootPath, "repositories") }

func repoPath(name string) string { return path.Join(rootPath, "repositories", name) }

func layerLinkDir(name string, d digest.Digest) string {
	return path.Join(repoPath(name), "_layers", string(d.Algorithm()), d.Encoded())
}

func layerLinkPath(name string, d digest.Digest) string {
	return path.Join(layerLinkDir(name, d), "link")
}

func revisionsRoot(name string) string {
	return path.Join(repoPath(name), "_manifests", "revisions")
}

func revisionDir(name string, d digest.Digest) string {
	return path.Join(revisionsRoot(name), string(d.Algorithm()), d.Encoded())
}

func revisionLinkPath(name string, d digest.Digest) string {
	return path.Join(revisionDir(name, d), "link")
}

func revisionMediaTypePath(name string, d digest.Digest) string {
	return path.Join(revisionDir(name, d), "mediatype")
}

func tagsRoot(name string) string { return path.Join(repoPath(name), "_manifests", "tags") }

func tagDir(name, tag string) string { return path.Join(tagsRoot(name), tag) }

func tagCurrentLinkPath(name, tag string) string {
	return path.Join(tagDir(name, tag), "current", "link")
}

func tagIndexLinkPath(name, tag string, d digest.Digest) string {
	return path.Join(tagDir(name, tag), "index", string(d.Algorithm()), d.Encoded(), "link")
}

func uploadDir(name, id string) string { return path.Join(repoPath(name), "_uploads", id) }

func uploadDataPath(name, id string) string { return path.Join(uploadDir(name, id), "data") }

func uploadStartedAtPath(name, id string) string {
	return path.Join(uploadDir(name, id), "startedat")
}

func uploadHashStateDir(name, id string, alg digest.Algorithm) string {
	return path.Join(uploadDir(name, id), "hashstates", string(alg))
}

// entryKind is what a file of the layout is, as a backup carries it.
type entryKind int

const (
	entryBlob         entryKind = iota + 1 // blobs/<alg>/<hh>/<hex>/data
	entryLayerLink                         // <name>/_layers/<alg>/<hex>/link
	entryRevisionLink                      // <name>/_manifests/revisions/<alg>/<hex>/link
	entryMediaType                         // <name>/_manifests/revisions/<alg>/<hex>/mediatype
	entryTagHistory                        // <name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
	entryTagLink                           // <name>/_manifests/tags/<tag>/current/link
)

// layoutEntry is a file of the layout, parsed from its path.
type layoutEntry struct {
	kind   entryKind
	repo   string        // all but blobs
	tag    string        // tag links and history
	digest digest.Digest // named by the path: all but a tag's current link
}

// errNotLayout refuses a path that is not a file a backup may carry.
var errNotLayout = errors.New("not a file of the registry layout (blobs, and the link files of repositories)")

// parseLayoutPath tells which file of the layout p is. Only the files a
// backup carries are accepted (no uploads, nothing of berth's), and only
// with names berth accepts: p must pass storage.CheckPath and be exactly
// the path the layout gives the entry it parses as.
func parseLayoutPath(p string) (layoutEntry, error) {
	if err := storage.CheckPath(p); err != nil {
		return layoutEntry{}, err
	}
	rest, ok := strings.CutPrefix(p, rootPath+"/")
	if !ok {
		return layoutEntry{}, errNotLayout
	}
	parts := strings.Split(rest, "/")
	digestOf := func(alg, hex string) digest.Digest {
		d, err := ParseDigest(alg + ":" + hex)
		if err != nil {
			return ""
		}
		return d
	}
	var e layoutEntry
	switch parts[0] {
	case "blobs":
		if len(parts) == 5 {
			e = layoutEntry{kind: entryBlob, digest: digestOf(parts[1], parts[3])}
		}
	case "repositories":
		// Name components never start with "_": the first that does ends
		// the name.
		i := slices.IndexFunc(parts, func(s string) bool { return strings.HasPrefix(s, "_") })
		if i < 2 {
			return layoutEntry{}, errNotLayout
		}
		e.repo = strings.Join(parts[1:i], "/")
		t := parts[i:]
		switch {
		case len(t) == 4 && t[0] == "_layers":
			e.kind, e.digest = entryLayerLink, digestOf(t[1], t[2])
		case len(t) == 5 && t[0] == "_manifests" && t[1] == "revisions":
			e.kind, e.digest = entryRevisionLink, digestOf(t[2], t[3])
			if t[4] == "mediatype" {
				e.kind = entryMediaType
			}
		case len(t) == 5 && t[0] == "_manifests" && t[1] == "tags" && t[3] == "current":
			e.kind, e.tag = entryTagLink, t[2]
		case len(t) == 7 && t[0] == "_manifests" && t[1] == "tags" && t[3] == "index":
			e.kind, e.tag, e.digest = entryTagHistory, t[2], digestOf(t[4], t[5])
		}
	}
	switch {
	case e.kind == 0,
		e.kind != entryTagLink && e.digest == "",
		e.repo != "" && ValidateName(e.repo) != nil,
		e.tag != "" && ValidateTag(e.tag) != nil,
		e.path() != p: // the fixed words, the blob's prefix directory
		return layoutEntry{}, errNotLayout
	}
	return e, nil
}

// path is where the layout keeps e.
func (e layoutEntry) path() string {
	switch e.kind {
	case entryBlob:
		return blobDataPath(e.digest)
	case entryLayerLink:
		return layerLinkPath(e.repo, e.digest)
	case entryRevisionLink:
		return revisionLinkPath(e.repo, e.digest)
	case entryMediaType:
		return revisionMediaTypePath(e.repo, e.digest)
	case entryTagHistory:
		return tagIndexLinkPath(e.repo, e.tag, e.digest)
	case entryTagLink:
		return tagCurrentLinkPath(e.repo, e.tag)
	}
	return ""
}

// validSidecar accepts what a revision's "mediatype" file may hold: one
// media type, printable, no spaces.
func validSidecar(b []byte) bool {
	if len(b) == 0 || len(b) > 255 || !bytes.ContainsRune(b, '/') {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
