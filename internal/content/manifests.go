package content

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Manifest media types berth understands. Any other type is stored as an
// opaque manifest after a JSON check, as the OCI spec allows.
const (
	MediaTypeOCIManifest      = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex         = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1    = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1JWS = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeEmptyJSON        = "application/vnd.oci.empty.v1+json"
)

// Manifest is a stored manifest revision.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Subject   digest.Digest
	Body      []byte // nil when only described (HEAD)
}

// descriptor is the part of an OCI descriptor berth checks.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifestDoc covers the fields of every manifest kind berth validates.
type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parsedManifest is a manifest that passed structural checks.
type parsedManifest struct {
	doc       manifestDoc
	mediaType string
	blobs     []digest.Digest // must be linked into the repository
	children  []digest.Digest // manifests that must exist in the repository
	subject   digest.Digest
}

func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

func manifestInvalid(format string, args ...any) *Error {
	return newError(CodeManifestInvalid, format, args...)
}

// parseManifest checks a manifest body against its declared content type.
func parseManifest(contentType string, body []byte) (*parsedManifest, error) {
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, manifestInvalid("manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, manifestInvalid("manifest has trailing data after the JSON document")
	}
	mt := contentType
	if parsed, _, err := mime.ParseMediaType(contentType); err == nil {
		mt = parsed
	}
	if mt == "" || mt == "application/json" || mt == "application/octet-stream" {
		mt = detectMediaType(doc)
	}
	if doc.MediaType != "" && doc.MediaType != mt {
		return nil, manifestInvalid("manifest mediaType %q does not match Content-Type %q", doc.MediaType, mt)
	}
	p := &parsedManifest{doc: doc, mediaType: mt}
	switch mt {
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1JWS:
		return nil, newError(CodeManifestInvalid, "Docker schema1 manifests are not supported; push with a current client")
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
			return nil, manifestInvalid("schemaVersion must be 2")
		}
		if doc.Config == nil {
			return nil, manifestInvalid("image manifest has no config descriptor")
		}
		if doc.Manifests != nil {
			return nil, manifestInvalid("image manifest must not have a manifests field")
		}
		d, err := checkDescriptor("config", *doc.Config)
		if err != nil {
			return nil, err
		}
		p.blobs = append(p.blobs, d)
		for i, l := range doc.Layers {
			d, err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l)
			if err != nil {
				return nil, err
			}
			if isNonDistributable(l) {
				continue // lives elsewhere by design (urls); never pushed
			}
			p.blobs = append(p.blobs, d)
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
			return nil, manifestInvalid("schemaVersion must be 2")
		}
		if doc.Config != nil || doc.Layers != nil {
			return nil, manifestInvalid("index must not have config or layers")
		}
		for i, m := range doc.Manifests {
			d, err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), m)
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, d)
		}
	default:
		// Unknown manifest kinds are accepted as opaque JSON documents.
	}
	if doc.Subject != nil {
		d, err := checkDescriptor("subject", *doc.Subject)
		if err != nil {
			return nil, err
		}
		p.subject = d
	}
	return p, nil
}

func detectMediaType(doc manifestDoc) string {
	switch {
	case doc.MediaType != "":
		return doc.MediaType
	case doc.Manifests != nil:
		return MediaTypeOCIIndex
	case doc.Config != nil:
		return MediaTypeOCIManifest
	}
	return ""
}

func isNonDistributable(d descriptor) bool {
	return strings.Contains(d.MediaType, "nondistributable") ||
		strings.Contains(d.MediaType, ".foreign.")
}

func checkDescriptor(field string, d descriptor) (digest.Digest, error) {
	if d.MediaType == "" {
		return "", manifestInvalid("%s: descriptor has no mediaType", field)
	}
	dg, err := ParseDigest(d.Digest)
	if err != nil {
		return "", manifestInvalid("%s: %v", field, err.(*Error).Message)
	}
	if d.Size < 0 {
		return "", manifestInvalid("%s: negative size", field)
	}
	return dg, nil
}

// artifactTypeOf is what the referrers API reports for a manifest: its
// artifactType, or for an image manifest without one, its config media type.
func artifactTypeOf(p *parsedManifest) string {
	if p.doc.ArtifactType != "" {
		return p.doc.ArtifactType
	}
	if p.doc.Config != nil && !isIndexType(p.mediaType) {
		return p.doc.Config.MediaType
	}
	return ""
}

func recordOf(d digest.Digest, size int64, p *parsedManifest) ManifestRecord {
	return ManifestRecord{
		Digest:       d,
		MediaType:    p.mediaType,
		Size:         size,
		ArtifactType: artifactTypeOf(p),
		Subject:      p.subject,
		Annotations:  p.doc.Annotations,
	}
}

// PutManifest validates and stores a manifest under ref (a tag or the
// manifest's own digest). Everything it references must already be in repo.
func (r *Registry) PutManifest(ctx context.Context, repo, ref, contentType string, body []byte) (Manifest, error) {
	if err := r.checkWritable(); err != nil {
		return Manifest{}, err
	}
	if err := r.waitIndex(ctx); err != nil {
		return Manifest{}, err
	}
	if err := ValidateName(repo); err != nil {
		return Manifest{}, err
	}
	if int64(len(body)) > r.opts.MaxManifestSize {
		return Manifest{}, newError(CodeTooLarge, "manifest is %d bytes, over the limit of %d", len(body), r.opts.MaxManifestSize)
	}
	var tag string
	d := digest.SHA256.FromBytes(body)
	if IsDigestReference(ref) {
		want, err := ParseDigest(ref)
		if err != nil {
			return Manifest{}, err
		}
		if want.Algorithm() != digest.SHA256 {
			d = want.Algorithm().FromBytes(body)
		}
		if d != want {
			return Manifest{}, newError(CodeDigestInvalid, "manifest body has digest %s, not %s", d, want)
		}
	} else {
		if err := ValidateTag(ref); err != nil {
			return Manifest{}, err
		}
		tag = ref
	}
	p, err := parseManifest(contentType, body)
	if err != nil {
		return Manifest{}, err
	}
	if p.mediaType == "" {
		return Manifest{}, manifestInvalid("cannot tell the manifest's media type: set Content-Type")
	}
	if err := r.checkReferences(ctx, repo, p); err != nil {
		return Manifest{}, err
	}

	// Storage first, index last: if berth dies in between, the index is
	// rebuilt from storage on the next start.
	if present, err := r.exists(ctx, blobDataPath(d)); err != nil {
		return Manifest{}, fmt.Errorf("put manifest %s@%s: %w", repo, d, err)
	} else if !present {
		if err := r.driver.PutContent(ctx, blobDataPath(d), body); err != nil {
			return Manifest{}, fmt.Errorf("put manifest %s@%s: %w", repo, d, err)
		}
	}
	if p.doc.MediaType == "" {
		if err := r.driver.PutContent(ctx, revisionMediaTypePath(repo, d), []byte(p.mediaType)); err != nil {
			return Manifest{}, fmt.Errorf("put manifest %s@%s: %w", repo, d, err)
		}
	}
	if err := r.writeLink(ctx, revisionLinkPath(repo, d), d); err != nil {
		return Manifest{}, fmt.Errorf("put manifest %s@%s: %w", repo, d, err)
	}
	r.records.remove(recordKey{repo, d})
	if err := r.index.PutManifest(ctx, repo, recordOf(d, int64(len(body)), p)); err != nil {
		return Manifest{}, err
	}
	if tag != "" {
		if err := r.setTag(ctx, repo, tag, d); err != nil {
			return Manifest{}, err
		}
	}
	return Manifest{Digest: d, MediaType: p.mediaType, Size: int64(len(body)), Subject: p.subject}, nil
}

func (r *Registry) setTag(ctx context.Context, repo, tag string, d digest.Digest) (err error) {
	done, err := r.lockTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	// The index link first: distribution reads current/link, so a tag only
	// moves once its history entry exists.
	if err := r.writeLink(ctx, tagIndexLinkPath(repo, tag, d), d); err != nil {
		return fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	if err := r.writeLink(ctx, tagCurrentLinkPath(repo, tag), d); err != nil {
		return fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	return r.index.PutTag(ctx, repo, tag, d)
}

func (r *Registry) deleteTag(ctx context.Context, repo, tag string) (err error) {
	done, err := r.lockTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	if err := r.driver.Delete(ctx, tagDir(repo, tag)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete tag %s:%s: %w", repo, tag, err)
	}
	return r.index.DeleteTag(ctx, repo, tag)
}

// untagIfAt removes a tag that still points at d. Under the tag's lock, so a
// concurrent push that moves the tag elsewhere is never undone.
func (r *Registry) untagIfAt(ctx context.Context, repo, tag string, d digest.Digest) (err error) {
	done, err := r.lockTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	cur, ok, err := r.index.Tag(ctx, repo, tag)
	if err != nil || !ok || cur != d {
		return err
	}
	if err := r.driver.Delete(ctx, tagDir(repo, tag)); err != nil && !isNotFound(err) {
		return fmt.Errorf("tag %s: %w", tag, err)
	}
	return r.index.DeleteTag(ctx, repo, tag)
}

func (r *Registry) checkReferences(ctx context.Context, repo string, p *parsedManifest) error {
	for _, b := range p.blobs {
		ok, err := r.exists(ctx, layerLinkPath(repo, b))
		if err != nil {
			return fmt.Errorf("check manifest references: %w", err)
		}
		if !ok {
			return &Error{Code: CodeManifestBlobUnknown, Message: fmt.Sprintf("blob %s is not in repository %s", b, repo), Detail: map[string]string{"digest": string(b)}}
		}
	}
	for _, c := range p.children {
		ok, err := r.exists(ctx, revisionLinkPath(repo, c))
		if err != nil {
			return fmt.Errorf("check manifest references: %w", err)
		}
		if !ok {
			return &Error{Code: CodeManifestBlobUnknown, Message: fmt.Sprintf("manifest %s is not in repository %s", c, repo), Detail: map[string]string{"digest": string(c)}}
		}
	}
	return nil
}

// resolve turns a reference into a manifest record. The index answers; on a
// miss, storage is asked too, so content written while berth was not running
// (say, by registry:2 on the same tree) is still served, and the index learns
// it.
func (r *Registry) resolve(ctx context.Context, repo, ref string) (ManifestRecord, error) {
	if err := ValidateName(repo); err != nil {
		return ManifestRecord{}, err
	}
	var d digest.Digest
	if IsDigestReference(ref) {
		var err error
		if d, err = ParseDigest(ref); err != nil {
			return ManifestRecord{}, err
		}
	} else {
		if ValidateTag(ref) != nil {
			// No manifest can live under a name that cannot be a tag.
			return ManifestRecord{}, newError(CodeManifestUnknown, "manifest %q not found in repository %s", truncate(ref), repo)
		}
		if r.indexBuilding() {
			return r.resolveFromStorage(ctx, repo, ref)
		}
		var ok bool
		var err error
		if d, ok, err = r.index.Tag(ctx, repo, ref); err != nil {
			return ManifestRecord{}, err
		} else if !ok {
			return r.resolveFromStorage(ctx, repo, ref)
		}
		// A tag in the index always names a manifest of the repository
		// (deleting a manifest deletes its tags in the same step), so a
		// cached record answers without a second lookup.
		if rec, ok := r.records.get(recordKey{repo, d}); ok {
			return rec, nil
		}
	}
	if r.indexBuilding() {
		return r.resolveFromStorage(ctx, repo, ref)
	}
	rec, ok, err := r.index.Manifest(ctx, repo, d)
	if err != nil {
		return ManifestRecord{}, err
	}
	if !ok {
		return r.resolveFromStorage(ctx, repo, ref)
	}
	r.records.put(recordKey{repo, d}, rec)
	return rec, nil
}

func (r *Registry) resolveFromStorage(ctx context.Context, repo, ref string) (ManifestRecord, error) {
	unknown := newError(CodeManifestUnknown, "manifest %s not found in repository %s", ref, repo)
	var tag string
	var d digest.Digest
	var err error
	if IsDigestReference(ref) {
		d = digest.Digest(ref)
	} else {
		tag = ref
		if d, err = r.readLink(ctx, tagCurrentLinkPath(repo, tag)); err != nil {
			if isNotFound(err) {
				return ManifestRecord{}, unknown
			}
			return ManifestRecord{}, fmt.Errorf("resolve %s:%s: %w", repo, tag, err)
		}
	}
	if _, err := r.readLink(ctx, revisionLinkPath(repo, d)); err != nil {
		if isNotFound(err) {
			return ManifestRecord{}, unknown
		}
		return ManifestRecord{}, fmt.Errorf("resolve %s@%s: %w", repo, d, err)
	}
	rec, ok, err := r.describeStored(ctx, repo, d)
	if err != nil {
		return ManifestRecord{}, fmt.Errorf("resolve %s@%s: %w", repo, d, err)
	}
	if !ok {
		return ManifestRecord{}, unknown
	}
	if r.opts.ReadOnly || r.indexBuilding() {
		// A read-only instance never writes, not even to the index: with
		// a shared index, the writable instances own it. Nor does anyone
		// while the index is being built: the build's Replace would race
		// the write.
		return rec, nil
	}
	if err := r.index.PutManifest(ctx, repo, rec); err != nil {
		return ManifestRecord{}, err
	}
	if tag != "" {
		// Under the tag's lock, and only if the tag still points where it
		// did: a concurrent delete or move must not be undone.
		if err := r.learnTag(ctx, repo, tag, d); err != nil {
			return ManifestRecord{}, err
		}
	}
	return rec, nil
}

// StatManifest describes a manifest without reading its body.
func (r *Registry) StatManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	rec, err := r.resolve(ctx, repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Digest: rec.Digest, MediaType: rec.MediaType, Size: rec.Size, Subject: rec.Subject}, nil
}

// GetManifest returns a manifest and its body.
func (r *Registry) GetManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	m, err := r.StatManifest(ctx, repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	if body, ok := r.bodies.get(m.Digest); ok {
		m.Body, m.Size = body, int64(len(body))
		return m, nil
	}
	body, err := r.driver.GetContent(ctx, blobDataPath(m.Digest))
	if isNotFound(err) {
		return Manifest{}, newError(CodeManifestUnknown, "manifest %s not found in repository %s", m.Digest, repo)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo, m.Digest, err)
	}
	r.bodies.put(m.Digest, body)
	m.Body, m.Size = body, int64(len(body))
	return m, nil
}

// DeleteManifest deletes a tag (ref is a tag) or a manifest revision with
// every tag that points at it (ref is a digest).
func (r *Registry) DeleteManifest(ctx context.Context, repo, ref string) error {
	if err := r.checkDeletable(); err != nil {
		return err
	}
	if err := r.waitIndex(ctx); err != nil {
		return err
	}
	rec, err := r.resolve(ctx, repo, ref)
	if err != nil {
		return err
	}
	if !IsDigestReference(ref) {
		return r.deleteTag(ctx, repo, ref)
	}
	tags, err := r.index.Tags(ctx, repo, "", -1)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if t.Digest != rec.Digest {
			continue
		}
		if err := r.untagIfAt(ctx, repo, t.Name, rec.Digest); err != nil {
			return fmt.Errorf("delete manifest %s@%s: %w", repo, rec.Digest, err)
		}
	}
	if err := r.driver.Delete(ctx, revisionDir(repo, rec.Digest)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete manifest %s@%s: %w", repo, rec.Digest, err)
	}
	return r.index.DeleteManifest(ctx, repo, rec.Digest)
}
