package s3

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/storage/driverparams"
)

// Size limits of the S3 API.
const (
	minPartSize = 5 << 20 // every part but the last must be at least this big
	maxPartSize = 5 << 30 // no part (and no single-request copy) may be bigger
	maxParts    = 10000
)

// Defaults, as in registry:2 (CNCF distribution) unless noted.
const (
	DefaultChunkSize                   = 10 << 20
	DefaultMultipartCopyChunkSize      = 32 << 20
	DefaultMultipartCopyMaxConcurrency = 100
	DefaultMultipartCopyThresholdSize  = 32 << 20
	DefaultStorageClass                = "STANDARD"
	DefaultObjectACL                   = "private"
	// DefaultUploadConcurrency is berth's own: how many parts one Writer
	// uploads at once (distribution uploads one at a time).
	DefaultUploadConcurrency = 4
)

// noStorageClass leaves the storage class header out, for S3-compatible
// servers that reject it.
const noStorageClass = "NONE"

var storageClasses = []string{
	noStorageClass,
	"STANDARD",
	"REDUCED_REDUNDANCY",
	"STANDARD_IA",
	"ONEZONE_IA",
	"INTELLIGENT_TIERING",
	"OUTPOSTS",
	"GLACIER_IR",
	"EXPRESS_ONEZONE",
}

var objectACLs = []string{
	"private",
	"public-read",
	"public-read-write",
	"authenticated-read",
	"aws-exec-read",
	"bucket-owner-read",
	"bucket-owner-full-control",
}

// Params configures the driver. The fields are registry:2's storage.s3
// keys; FromMap reads them from a config's driver section.
//
// Start from DefaultParams when filling Params by hand: New supplies
// defaults for zero sizes and counts, but takes the booleans as given (a
// zero Params means plain HTTP and signature V2).
type Params struct {
	AccessKey    string // with SecretKey; empty: the AWS environment, shared credentials file, or instance role
	SecretKey    string
	SessionToken string

	Region         string // required unless RegionEndpoint is set (then "us-east-1" if empty)
	RegionEndpoint string // "host[:port]" or "http(s)://host[:port]"; a scheme overrides Secure
	ForcePathStyle bool   // path-style requests; when false, the style is chosen from the endpoint
	Bucket         string
	RootDirectory  string // key prefix, as in registry:2

	Encrypt    bool   // server-side encryption: SSE-S3, or SSE-KMS with KeyID
	KeyID      string // KMS key for Encrypt
	Secure     bool   // HTTPS
	SkipVerify bool   // do not verify the server's TLS certificate
	V4Auth     bool   // signature V4 (V2 otherwise; never on Amazon S3)

	ChunkSize                   int64 // multipart part size for Writer, >= 5 MiB
	MultipartCopyChunkSize      int64 // part size of server-side copies in Move
	MultipartCopyMaxConcurrency int   // parts copied at once in Move
	MultipartCopyThresholdSize  int64 // objects above this are copied in parts

	StorageClass string // "NONE" or "" sends none
	UserAgent    string // appended to the client's User-Agent
	ObjectACL    string // canned ACL for new objects; "" sends none

	UseDualStack bool // Amazon S3 dual-stack endpoints
	Accelerate   bool // Amazon S3 transfer acceleration

	// UploadConcurrency bounds the parts one Writer has in flight; a
	// Writer buffers at most UploadConcurrency+1 parts of ChunkSize.
	UploadConcurrency int
}

// DefaultParams returns registry:2's defaults.
func DefaultParams() Params {
	return Params{
		Secure:                      true,
		V4Auth:                      true,
		ChunkSize:                   DefaultChunkSize,
		MultipartCopyChunkSize:      DefaultMultipartCopyChunkSize,
		MultipartCopyMaxConcurrency: DefaultMultipartCopyMaxConcurrency,
		MultipartCopyThresholdSize:  DefaultMultipartCopyThresholdSize,
		StorageClass:                DefaultStorageClass,
		ObjectACL:                   DefaultObjectACL,
		UploadConcurrency:           DefaultUploadConcurrency,
	}
}

// withDefaults fills zero sizes and counts.
func (p Params) withDefaults() Params {
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if p.MultipartCopyChunkSize == 0 {
		p.MultipartCopyChunkSize = DefaultMultipartCopyChunkSize
	}
	if p.MultipartCopyMaxConcurrency == 0 {
		p.MultipartCopyMaxConcurrency = DefaultMultipartCopyMaxConcurrency
	}
	if p.MultipartCopyThresholdSize == 0 {
		p.MultipartCopyThresholdSize = DefaultMultipartCopyThresholdSize
	}
	if p.UploadConcurrency == 0 {
		p.UploadConcurrency = DefaultUploadConcurrency
	}
	if p.Region == "" && p.RegionEndpoint != "" {
		p.Region = "us-east-1"
	}
	return p
}

// validate checks the ranges registry:2 enforces.
func (p Params) validate() error {
	if p.Bucket == "" {
		return fmt.Errorf("s3: no bucket parameter provided")
	}
	if p.Region == "" && p.RegionEndpoint == "" {
		return fmt.Errorf("s3: no region parameter provided")
	}
	if (p.AccessKey == "") != (p.SecretKey == "") {
		return fmt.Errorf("s3: accesskey and secretkey must be given together")
	}
	if err := inRange("chunksize", p.ChunkSize, minPartSize, maxPartSize); err != nil {
		return err
	}
	if err := inRange("multipartcopychunksize", p.MultipartCopyChunkSize, minPartSize, maxPartSize); err != nil {
		return err
	}
	if err := inRange("multipartcopymaxconcurrency", int64(p.MultipartCopyMaxConcurrency), 1, math.MaxInt32); err != nil {
		return err
	}
	if err := inRange("multipartcopythresholdsize", p.MultipartCopyThresholdSize, 0, maxPartSize); err != nil {
		return err
	}
	if err := inRange("uploadconcurrency", int64(p.UploadConcurrency), 1, 1024); err != nil {
		return err
	}
	if p.StorageClass != "" && !slices.Contains(storageClasses, p.StorageClass) {
		return fmt.Errorf("s3: the storageclass parameter must be one of %v, %q invalid", storageClasses, p.StorageClass)
	}
	if p.ObjectACL != "" && !slices.Contains(objectACLs, p.ObjectACL) {
		return fmt.Errorf("s3: invalid value for objectacl parameter: %q (one of %v)", p.ObjectACL, objectACLs)
	}
	return nil
}

func inRange(name string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("s3: the %s parameter should be a number between %d and %d (inclusive), not %d", name, lo, hi, v)
	}
	return nil
}

// knownKeys lists the keys FromMap accepts. loglevel and usefipsendpoint
// are registry:2 keys berth accepts for compatibility (loglevel has no
// effect; usefipsendpoint must be false).
var knownKeys = []string{
	"accesskey", "secretkey", "sessiontoken",
	"region", "regionendpoint", "forcepathstyle", "bucket", "rootdirectory",
	"encrypt", "keyid", "secure", "skipverify", "v4auth",
	"chunksize", "multipartcopychunksize", "multipartcopymaxconcurrency", "multipartcopythresholdsize",
	"storageclass", "useragent", "objectacl",
	"usedualstack", "accelerate", "usefipsendpoint", "loglevel",
	"uploadconcurrency",
}

// FromMap parses the parameters of a registry:2 config's storage.s3
// section (or the equivalent REGISTRY_STORAGE_S3_* variables): values may
// be strings, booleans or numbers, and numbers and booleans may also be
// strings, as registry:2 accepts. Missing keys take registry:2's
// defaults. Unknown keys are errors.
func FromMap(m map[string]any) (Params, error) {
	p := DefaultParams()
	in := driverparams.New(m)
	if unknown := in.Unknown(knownKeys); len(unknown) > 0 {
		return Params{}, fmt.Errorf("s3: unknown parameter(s) %s", strings.Join(unknown, ", "))
	}

	in.String("accesskey", &p.AccessKey)
	in.String("secretkey", &p.SecretKey)
	in.String("sessiontoken", &p.SessionToken)
	in.String("region", &p.Region)
	in.String("regionendpoint", &p.RegionEndpoint)
	in.Bool("forcepathstyle", &p.ForcePathStyle)
	in.String("bucket", &p.Bucket)
	in.String("rootdirectory", &p.RootDirectory)
	in.Bool("encrypt", &p.Encrypt)
	in.String("keyid", &p.KeyID)
	in.Bool("secure", &p.Secure)
	in.Bool("skipverify", &p.SkipVerify)
	in.Bool("v4auth", &p.V4Auth)
	in.Int("chunksize", &p.ChunkSize)
	in.Int("multipartcopychunksize", &p.MultipartCopyChunkSize)
	var copyConcurrency = int64(p.MultipartCopyMaxConcurrency)
	in.Int("multipartcopymaxconcurrency", &copyConcurrency)
	in.Int("multipartcopythresholdsize", &p.MultipartCopyThresholdSize)
	in.String("useragent", &p.UserAgent)
	in.Bool("usedualstack", &p.UseDualStack)
	in.Bool("accelerate", &p.Accelerate)
	var uploadConcurrency = int64(p.UploadConcurrency)
	in.Int("uploadconcurrency", &uploadConcurrency)
	var fips bool
	in.Bool("usefipsendpoint", &fips)
	if fips {
		in.Errorf("usefipsendpoint is not supported")
	}

	// registry:2 wants these two as strings, and is lenient about case
	// only for the storage class.
	switch v := in.Get("storageclass").(type) {
	case nil:
	case string:
		p.StorageClass = strings.ToUpper(strings.TrimSpace(v))
	default:
		in.Errorf("the storageclass parameter must be one of %v, not %T", storageClasses, v)
	}
	switch v := in.Get("objectacl").(type) {
	case nil:
	case string:
		p.ObjectACL = strings.TrimSpace(v)
	default:
		in.Errorf("invalid value for objectacl parameter: %v", v)
	}

	if errs := in.Errors(); len(errs) > 0 {
		return Params{}, fmt.Errorf("s3: %s", strings.Join(errs, "; "))
	}
	if copyConcurrency > math.MaxInt32 || copyConcurrency < math.MinInt32 {
		return Params{}, inRange("multipartcopymaxconcurrency", copyConcurrency, 1, math.MaxInt32)
	}
	p.MultipartCopyMaxConcurrency = int(copyConcurrency)
	if uploadConcurrency > 1024 || uploadConcurrency < 1 {
		return Params{}, inRange("uploadconcurrency", uploadConcurrency, 1, 1024)
	}
	p.UploadConcurrency = int(uploadConcurrency)
	if p.StorageClass == "" {
		p.StorageClass = noStorageClass
	}
	if err := p.validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}
