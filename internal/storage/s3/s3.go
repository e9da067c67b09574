// Package s3 stores objects in an Amazon S3 (or S3-compatible) bucket.
//
// A storage path maps to a key exactly like registry:2's (CNCF
// distribution) S3 driver: the root directory and the path, without the
// leading slash. A bucket written by registry:2 is served as it is, and the
// other way round. Directories are implicit: a path is a directory when keys
// exist below it.
//
// S3 has no append, so a Writer streams into a multipart upload (several
// parts in flight at once) and every Close or Commit completes it: the bytes
// written so far become the object at the path, durable and readable, and
// the driver needs no state of its own. A later Writer(path, true), in this
// or any other process, starts a new multipart upload whose first parts are
// server-side copies of that object (or, below S3's 5 MiB minimum part
// size, a download of it into the first part's buffer). An upload sent as
// one chunk therefore costs nothing extra; one sent as many chunks of 5 MiB
// or more costs a server-side copy of what is already stored per chunk, as
// it does in registry:2. A crash in the middle of a session loses only that
// session's bytes (the object keeps what the last Close stored), and the
// incomplete multipart upload it leaves is aborted by the next Writer on
// the same path. Buckets should still have a lifecycle rule aborting
// incomplete multipart uploads after a day or so, as for registry:2.
//
// Writes refuse to make a path both an object and a directory, as the
// shared driver suite demands: a write checks that no key exists below the
// path and that no ancestor is an object. Ancestors found not to be objects
// are remembered for a short while to keep that cheap.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/objstore"
)

// Driver is a storage.Driver backed by an S3 bucket.
type Driver struct {
	client *minio.Client
	core   minio.Core
	bucket string
	prefix string // key of "/": the root directory without leading slash, with a trailing one, or ""
	params Params

	putOpts     minio.PutObjectOptions // for PutObject and new multipart uploads
	copyHeaders map[string]string      // the same settings as request headers, for CopyObject

	notObjects *objstore.AncestorCache

	bufs *objstore.BufferPool // part buffers of ChunkSize, counted while writers hold them
}

var _ storage.Driver = (*Driver)(nil)

// New connects to the bucket described by p. It does not check that the
// bucket exists or that the credentials work: the first request will.
func New(ctx context.Context, p Params) (*Driver, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	endpoint, secure, err := parseEndpoint(p)
	if err != nil {
		return nil, err
	}
	if !p.V4Auth && strings.HasSuffix(endpoint, "amazonaws.com") {
		return nil, fmt.Errorf("s3: on Amazon S3 only v4 authentication can be used (v4auth: true)")
	}

	transport, err := newTransport(secure, p.SkipVerify, p.UserAgent)
	if err != nil {
		return nil, err
	}

	lookup := minio.BucketLookupAuto
	if p.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        newCredentials(p),
		Secure:       secure,
		Transport:    transport,
		Region:       p.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	if p.UseDualStack {
		client.SetS3EnableDualstack(true)
	}
	if p.Accelerate {
		client.SetS3TransferAccelerate("s3-accelerate.amazonaws.com")
	}

	d := &Driver{
		client:     client,
		core:       minio.Core{Client: client},
		bucket:     p.Bucket,
		prefix:     strings.TrimLeft(strings.TrimRight(p.RootDirectory, "/")+"/", "/"),
		params:     p,
		notObjects: objstore.NewAncestorCache(objstore.AncestorTTL, 100_000),
		bufs:       objstore.NewBufferPool(p.ChunkSize),
		copyHeaders: map[string]string{
			// Copies keep the source's content type; settings below
			// are not metadata and apply either way.
			"x-amz-metadata-directive": "COPY",
		},
	}

	d.putOpts.ContentType = "application/octet-stream"
	d.putOpts.UserMetadata = map[string]string{}
	if p.StorageClass != "" && p.StorageClass != noStorageClass {
		d.putOpts.StorageClass = p.StorageClass
		d.copyHeaders["x-amz-storage-class"] = p.StorageClass
	}
	if p.ObjectACL != "" {
		d.putOpts.UserMetadata["x-amz-acl"] = p.ObjectACL
		d.copyHeaders["x-amz-acl"] = p.ObjectACL
	}
	if p.Encrypt {
		var sse encrypt.ServerSide = encrypt.NewSSE()
		if p.KeyID != "" {
			if sse, err = encrypt.NewSSEKMS(p.KeyID, nil); err != nil {
				return nil, fmt.Errorf("s3: keyid: %w", err)
			}
		}
		d.putOpts.ServerSideEncryption = sse
		h := http.Header{}
		sse.Marshal(h)
		for k := range h {
			d.copyHeaders[k] = h.Get(k)
		}
	}
	return d, nil
}

// parseEndpoint returns the host[:port] the client talks to and whether it
// uses TLS. A scheme in regionendpoint wins over the secure parameter, as
// with the AWS SDK registry:2 uses.
func parseEndpoint(p Params) (string, bool, error) {
	if p.RegionEndpoint == "" {
		return "s3.amazonaws.com", p.Secure, nil
	}
	ep := p.RegionEndpoint
	secure := p.Secure
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", false, fmt.Errorf("s3: regionendpoint %q: %w", ep, err)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return "", false, fmt.Errorf("s3: regionendpoint %q: scheme must be http or https", ep)
		}
		if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return "", false, fmt.Errorf("s3: regionendpoint %q: a path is not supported", ep)
		}
		ep = u.Host
	}
	ep = strings.TrimRight(ep, "/")
	if ep == "" || strings.ContainsAny(ep, "/?#") {
		return "", false, fmt.Errorf("s3: regionendpoint %q is not a host[:port] or URL", p.RegionEndpoint)
	}
	return ep, secure, nil
}

// newCredentials returns the static keys from the config, or else the
// standard AWS chain: environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), shared credentials file (AWS_SHARED_CREDENTIALS_FILE
// or ~/.aws/credentials, profile AWS_PROFILE), then web identity, container
// or instance role.
func newCredentials(p Params) *credentials.Credentials {
	signer := credentials.SignatureV4
	if !p.V4Auth {
		signer = credentials.SignatureV2
	}
	if p.AccessKey != "" {
		return credentials.NewStatic(p.AccessKey, p.SecretKey, p.SessionToken, signer)
	}
	var chain []credentials.Provider = []credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	}
	if signer == credentials.SignatureV2 {
		for i, pr := range chain {
			chain[i] = v2Provider{pr}
		}
	}
	return credentials.NewChainCredentials(chain)
}

// v2Provider makes a provider's credentials sign with signature V2.
type v2Provider struct{ credentials.Provider }

func (p v2Provider) Retrieve() (credentials.Value, error) {
	v, err := p.Provider.Retrieve()
	v.SignerType = credentials.SignatureV2
	return v, err
}

func (p v2Provider) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	v, err := p.Provider.RetrieveWithCredContext(cc)
	v.SignerType = credentials.SignatureV2
	return v, err
}

// newTransport builds the HTTP transport: the system roots plus
// AWS_CA_BUNDLE's certificates (what the AWS SDKs and CLI honour), and
// optionally no verification at all.
func newTransport(secure, skipVerify bool, userAgent string) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	if secure {
		roots, err := rootCAs()
		if err != nil {
			return nil, err
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = roots
		tr.TLSClientConfig.InsecureSkipVerify = skipVerify
	}
	if userAgent != "" {
		return userAgentTransport{tr, userAgent}, nil
	}
	return tr, nil
}

// rootCAs returns the system roots with AWS_CA_BUNDLE added. A bundle that
// cannot be read or holds no certificate is an error: silently ignoring it
// would fail later with a less helpful TLS error.
func rootCAs() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	bundle := os.Getenv("AWS_CA_BUNDLE")
	if bundle == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(bundle)
	if err != nil {
		return nil, fmt.Errorf("s3: AWS_CA_BUNDLE: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3: AWS_CA_BUNDLE %s: no PEM certificate found", bundle)
	}
	return pool, nil
}

// userAgentTransport appends the configured useragent, like registry:2
// does with the AWS SDK's free-form user agent. The User-Agent header is
// not signed, so changing it after signing is fine.
type userAgentTransport struct {
	rt http.RoundTripper
	ua string
}

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	if ua := r.Header.Get("User-Agent"); ua != "" {
		r2.Header.Set("User-Agent", ua+" "+t.ua)
	} else {
		r2.Header.Set("User-Agent", t.ua)
	}
	return t.rt.RoundTrip(r2)
}

// Name implements storage.Driver.
func (d *Driver) Name() string { return "s3" }

// Bucket returns the bucket name.
func (d *Driver) Bucket() string { return d.bucket }

// Key returns the object key that holds path p: registry:2's mapping.
func (d *Driver) Key(p string) string {
	return strings.TrimLeft(strings.TrimRight(d.params.RootDirectory, "/")+p, "/")
}

// dirPrefix is the key prefix of everything below directory p.
func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.prefix
	}
	return d.Key(p) + "/"
}

// GetContent implements storage.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	r, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, d.wrap("get", p, err)
	}
	return b, nil
}

// Reader implements storage.Driver with a (ranged) GET.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := storage.CheckOp(ctx, "reader", p); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, &storage.PathError{Op: "reader", Path: p, Err: fmt.Errorf("negative offset %d", offset)}
	}
	if p == "/" {
		return nil, &storage.PathError{Op: "reader", Path: p, Err: storage.ErrNotFound}
	}
	var opts minio.GetObjectOptions
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, d.wrap("reader", p, err)
		}
	}
	body, _, _, err := d.core.GetObject(ctx, d.bucket, d.Key(p), opts)
	if err != nil {
		if offset > 0 && minio.ToErrorResponse(err).Code == "InvalidRange" {
			// Only an existing object has a range to be beyond.
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, d.wrap("reader", p, err)
	}
	return body, nil
}

// PutContent implements storage.Driver with a single PUT, which S3 applies
// atomically.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := storage.CheckObject(ctx, "put", p); err != nil {
		return err
	}
	if err := d.checkWritable(ctx, "put", p); err != nil {
		return err
	}
	err := retryParentRace(ctx, func() error {
		_, err := d.core.PutObject(ctx, d.bucket, d.Key(p), bytes.NewReader(content), int64(len(content)), "", "", d.putOpts)
		return err
	})
	if err != nil {
		return d.wrap("put", p, err)
	}
	d.notObjects.Forget(p)
	return nil
}

// Stat implements storage.Driver: a HEAD, and if there is no object, a
// one-key listing below the path.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	fi, err := objstore.Stat(ctx, p,
		func(ctx context.Context) (objstore.Object, bool, error) {
			info, found, err := d.head(ctx, d.Key(p))
			return objstore.Object{Size: info.Size, ModTime: info.LastModified}, found, err
		},
		func(ctx context.Context) (bool, error) { return d.hasChildren(ctx, p) })
	return fi, d.wrap("stat", p, err)
}

// List implements storage.Driver with a delimited, paginated listing.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := storage.CheckOp(ctx, "list", p); err != nil {
		return nil, err
	}
	prefix := d.dirPrefix(p)
	var children []string
	seen := false
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, FetchOwner: new(bool)}) {
		if obj.Err != nil {
			return nil, d.wrap("list", p, obj.Err)
		}
		seen = true
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		if name == "" {
			continue // a "directory marker" object some tools create
		}
		child := path.Join(p, name)
		if storage.CheckPath(child) != nil {
			continue // a key no storage path can name
		}
		children = append(children, child)
	}
	if err := ctx.Err(); err != nil {
		return nil, &storage.PathError{Op: "list", Path: p, Err: err}
	}
	if !seen && p != "/" {
		return nil, &storage.PathError{Op: "list", Path: p, Err: storage.ErrNotFound}
	}
	if children == nil {
		children = []string{}
	}
	return children, nil
}

// Move implements storage.Driver: a server-side copy, then the source is
// deleted. The destination appears in one step (CopyObject or
// CompleteMultipartUpload). A directory is moved object by object.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := storage.CheckObject(ctx, "move", src); err != nil {
		return err
	}
	if err := storage.CheckObject(ctx, "move", dst); err != nil {
		return err
	}
	info, found, err := d.head(ctx, d.Key(src))
	if err != nil {
		return d.wrap("move", src, err)
	}
	if !found {
		return d.moveDir(ctx, src, dst)
	}
	if src == dst {
		return nil
	}
	if err := d.checkWritable(ctx, "move", dst); err != nil {
		return err
	}
	if err := d.copyObject(ctx, d.Key(src), d.Key(dst), info); err != nil {
		return d.wrap("move", dst, err)
	}
	d.notObjects.Forget(dst)
	if err := d.client.RemoveObject(ctx, d.bucket, d.Key(src), minio.RemoveObjectOptions{}); err != nil {
		return d.wrap("move", src, err)
	}
	return nil
}

func (d *Driver) moveDir(ctx context.Context, src, dst string) error {
	prefix := d.dirPrefix(src)
	var objs []minio.ObjectInfo
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, FetchOwner: new(bool)}) {
		if obj.Err != nil {
			return d.wrap("move", src, obj.Err)
		}
		objs = append(objs, obj)
	}
	if err := ctx.Err(); err != nil {
		return &storage.PathError{Op: "move", Path: src, Err: err}
	}
	if len(objs) == 0 {
		return &storage.PathError{Op: "move", Path: src, Err: storage.ErrNotFound}
	}
	if src == dst {
		return nil
	}
	if strings.HasPrefix(dst, src+"/") {
		return &storage.PathError{Op: "move", Path: dst, Err: errors.New("cannot move a directory into itself")}
	}
	// Like rename(2): the destination must not exist, and its parents
	// must not be objects.
	if err := d.checkWritable(ctx, "move", dst); err != nil {
		return err
	}
	if _, found, err := d.head(ctx, d.Key(dst)); err != nil {
		return d.wrap("move", dst, err)
	} else if found {
		return &storage.PathError{Op: "move", Path: dst, Err: errors.New("destination is an object, source a directory")}
	}
	dstPrefix := d.dirPrefix(dst)
	for _, obj := range objs {
		rel := strings.TrimPrefix(obj.Key, prefix)
		if err := d.copyObject(ctx, obj.Key, dstPrefix+rel, obj); err != nil {
			return d.wrap("move", dst, err)
		}
		d.notObjects.Forget(path.Join(dst, rel))
	}
	return d.removeKeys(ctx, "move", src, func(yield func(string) bool) {
		for _, obj := range objs {
			if !yield(obj.Key) {
				return
			}
		}
	})
}

// Delete implements storage.Driver: the object at the path and every key
// below it, with batched DeleteObjects.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := storage.CheckObject(ctx, "delete", p); err != nil {
		return err
	}
	key := d.Key(p)
	_, found, err := d.head(ctx, key)
	if err != nil {
		return d.wrap("delete", p, err)
	}
	// A directory may hold multipart uploads a writer never ended (its
	// process crashed): they are not objects, so neither List nor the
	// walk below sees them, yet the bucket keeps (and bills) their parts.
	// They are aborted beside the walk. An object's own are not looked
	// for: the next Writer at its key aborts them (abortStale).
	aborted := make(chan error, 1)
	if found {
		aborted <- nil
	} else {
		go func() { aborted <- d.abortUploadsBelow(ctx, key) }()
	}
	var listErr error
	n := 0
	err = d.removeKeys(ctx, "delete", p, func(yield func(string) bool) {
		if found {
			n++
			if !yield(key) {
				return
			}
		}
		for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: key + "/", Recursive: true, FetchOwner: new(bool)}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			n++
			if !yield(obj.Key) {
				return
			}
		}
	})
	abortErr := <-aborted
	if listErr != nil {
		return d.wrap("delete", p, listErr)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &storage.PathError{Op: "delete", Path: p, Err: err}
	}
	if abortErr != nil {
		return d.wrap("delete", p, abortErr)
	}
	if n == 0 {
		return &storage.PathError{Op: "delete", Path: p, Err: storage.ErrNotFound}
	}
	return nil
}

// abortUploadsBelow aborts the incomplete multipart uploads below the
// directory at key. Some servers cannot list uploads; as in abortStale,
// that is not worth failing a delete for.
func (d *Driver) abortUploadsBelow(ctx context.Context, key string) error {
	prefix := key + "/"
	keyMarker, idMarker := "", ""
	for {
		res, err := d.core.ListMultipartUploads(ctx, d.bucket, prefix, keyMarker, idMarker, "", 1000)
		if err != nil {
			return ctx.Err()
		}
		for _, u := range res.Uploads {
			if err := d.core.AbortMultipartUpload(ctx, d.bucket, u.Key, u.UploadID); err != nil &&
				minio.ToErrorResponse(err).Code != "NoSuchUpload" {
				return fmt.Errorf("abort multipart upload of %s: %w", u.Key, err)
			}
		}
		if !res.IsTruncated || res.NextKeyMarker == "" {
			return nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// removeKeys deletes keys in batches of up to 1000 (DeleteObjects).
func (d *Driver) removeKeys(ctx context.Context, op, p string, keys func(yield func(string) bool)) error {
	objs := func(yield func(minio.ObjectInfo) bool) {
		for k := range keys {
			if !yield(minio.ObjectInfo{Key: k}) {
				return
			}
		}
	}
	results, err := d.client.RemoveObjectsWithIter(ctx, d.bucket, objs, minio.RemoveObjectsOptions{})
	if err != nil {
		return d.wrap(op, p, err)
	}
	var errs []error
	for res := range results {
		if res.Err != nil && minio.ToErrorResponse(res.Err).Code != "NoSuchKey" {
			errs = append(errs, fmt.Errorf("%s: %w", res.ObjectName, res.Err))
		}
	}
	if len(errs) > 0 {
		return &storage.PathError{Op: op, Path: p, Err: errors.Join(errs...)}
	}
	return nil
}

// URLFor returns a presigned URL that fetches the object at p for expiry,
// for storage.redirect. The object is not checked for existence.
func (d *Driver) URLFor(ctx context.Context, p string, expiry time.Duration) (string, error) {
	return d.URLForMethod(ctx, http.MethodGet, p, expiry)
}

// URLForMethod is URLFor for GET or HEAD requests (a presigned URL is only
// valid for the method it was signed for).
func (d *Driver) URLForMethod(ctx context.Context, method, p string, expiry time.Duration) (string, error) {
	if err := storage.CheckObject(ctx, "url", p); err != nil {
		return "", err
	}
	var u *url.URL
	var err error
	switch method {
	case http.MethodGet:
		u, err = d.client.PresignedGetObject(ctx, d.bucket, d.Key(p), expiry, nil)
	case http.MethodHead:
		u, err = d.client.PresignedHeadObject(ctx, d.bucket, d.Key(p), expiry, nil)
	default:
		return "", &storage.PathError{Op: "url", Path: p, Err: fmt.Errorf("method %s cannot be presigned", method)}
	}
	if err != nil {
		return "", d.wrap("url", p, err)
	}
	return u.String(), nil
}

// head returns the object at key; found is false (and err nil) when there
// is none.
func (d *Driver) head(ctx context.Context, key string) (minio.ObjectInfo, bool, error) {
	info, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return minio.ObjectInfo{}, false, nil
		}
		return minio.ObjectInfo{}, false, err
	}
	return info, true, nil
}

// hasChildren reports whether any key exists below directory p.
func (d *Driver) hasChildren(ctx context.Context, p string) (bool, error) {
	found := false
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{
		Prefix: d.dirPrefix(p), Recursive: true, MaxKeys: 1, FetchOwner: new(bool),
	}) {
		if obj.Err != nil {
			return false, obj.Err
		}
		found = true
		break
	}
	if !found {
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
	return found, nil
}

// Errors of writes that would make a path both an object and a directory.
var (
	errIsDirectory  = errors.New("is a directory")
	errParentObject = errors.New("a parent is an object")
)

// checkWritable refuses to create an object at p when p is a directory or
// one of its ancestors is an object. The checks run concurrently.
func (d *Driver) checkWritable(ctx context.Context, op, p string) error {
	ancestors := d.notObjects.Uncached(p)
	errs := make([]error, len(ancestors)+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		dir, err := d.hasChildren(ctx, p)
		switch {
		case err != nil:
			errs[0] = d.wrap(op, p, err)
		case dir:
			errs[0] = &storage.PathError{Op: op, Path: p, Err: errIsDirectory}
		}
	})
	for i, a := range ancestors {
		wg.Go(func() {
			_, found, err := d.head(ctx, d.Key(a))
			switch {
			case err != nil:
				errs[i+1] = d.wrap(op, p, err)
			case found:
				errs[i+1] = &storage.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: %s", errParentObject, a)}
			default:
				d.notObjects.Add(a)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// copyObject copies src to dst on the server: in one request up to the
// multipart copy threshold, in parts of MultipartCopyChunkSize above it.
// The source must still be the version described by info.
func (d *Driver) copyObject(ctx context.Context, src, dst string, info minio.ObjectInfo) error {
	if info.Size <= d.params.MultipartCopyThresholdSize {
		hdr := make(map[string]string, len(d.copyHeaders)+1)
		for k, v := range d.copyHeaders {
			hdr[k] = v
		}
		if info.ETag != "" {
			hdr["x-amz-copy-source-if-match"] = quoteETag(info.ETag)
		}
		return retryParentRace(ctx, func() error {
			_, err := d.core.CopyObject(ctx, d.bucket, src, d.bucket, dst, hdr, minio.CopySrcOptions{}, minio.PutObjectOptions{})
			return err
		})
	}
	uploadID, err := d.core.NewMultipartUpload(ctx, d.bucket, dst, d.putOpts)
	if err != nil {
		return err
	}
	ranges := copyRanges(info.Size, d.params.MultipartCopyChunkSize)
	parts := make([]minio.CompletePart, len(ranges))
	err = objstore.Parallel(len(ranges), d.params.MultipartCopyMaxConcurrency, func(i int) error {
		var err error
		parts[i], err = d.copyPart(ctx, src, dst, uploadID, i+1, ranges[i], info.ETag)
		return err
	})
	if err != nil {
		d.abort(dst, uploadID)
		return err
	}
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, dst, uploadID, parts, d.putOpts); err != nil {
		d.abort(dst, uploadID)
		return err
	}
	return nil
}

// copyPart makes part num of upload uploadID at dst from a range of src.
func (d *Driver) copyPart(ctx context.Context, src, dst, uploadID string, num int, r byteRange, etag string) (minio.CompletePart, error) {
	var hdr map[string]string
	if etag != "" {
		hdr = map[string]string{"x-amz-copy-source-if-match": quoteETag(etag)}
	}
	p, err := d.core.CopyObjectPart(ctx, d.bucket, src, d.bucket, dst, uploadID, num, r.off, r.n, hdr)
	if err != nil {
		return minio.CompletePart{}, err
	}
	return minio.CompletePart{PartNumber: num, ETag: p.ETag}, nil
}

// abort gives up a multipart upload, on a context of its own: it runs when
// the caller's may be cancelled. Errors are ignored; a lifecycle rule or
// the next Writer on the key cleans up what remains.
func (d *Driver) abort(key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.core.AbortMultipartUpload(ctx, d.bucket, key, uploadID)
}

type byteRange struct{ off, n int64 }

// copyRanges splits size bytes into ranges of about chunk bytes that are
// all valid non-final parts: at least 5 MiB (unless size itself is
// smaller) and at most 5 GiB.
func copyRanges(size, chunk int64) []byteRange {
	n := max(size/chunk, (size+maxPartSize-1)/maxPartSize, 1)
	ranges := make([]byteRange, n)
	var off int64
	for i := range n {
		m := size / n
		if i < size%n {
			m++
		}
		ranges[i] = byteRange{off, m}
		off += m
	}
	return ranges
}

func quoteETag(etag string) string {
	if strings.HasPrefix(etag, `"`) {
		return etag
	}
	return `"` + etag + `"`
}

// isNotFound reports whether err means the object does not exist. A
// missing bucket is a configuration error, not a missing object.
func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket", "NoSuchUpload":
		return false
	}
	return resp.StatusCode == http.StatusNotFound
}

// wrap turns a client error into a PathError, mapping a missing object to
// storage.ErrNotFound.
func (d *Driver) wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var pe *storage.PathError
	if errors.As(err, &pe) {
		return err
	}
	if isNotFound(err) {
		err = storage.ErrNotFound
	}
	return &storage.PathError{Op: op, Path: p, Err: err}
}
