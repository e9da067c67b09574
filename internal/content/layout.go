package content

import (
	"path"

	"github.com/opencontainers/go-digest"
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
