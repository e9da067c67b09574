package s3

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
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
	var unknown []string
	for k := range m {
		if !slices.Contains(knownKeys, strings.ToLower(k)) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Params{}, fmt.Errorf("s3: unknown parameter(s) %s", strings.Join(unknown, ", "))
	}
	get := func(key string) any {
		for k, v := range m {
			if strings.ToLower(k) == key {
				return v
			}
		}
		return nil
	}

	var errs []string
	str := func(key string, dst *string) {
		switch v := get(key).(type) {
		case nil:
		case string:
			*dst = v
		case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			*dst = fmt.Sprint(v)
		default:
			errs = append(errs, fmt.Sprintf("the %s parameter should be a string, not %T", key, v))
		}
	}
	boolean := func(key string, dst *bool) {
		switch v := get(key).(type) {
		case nil:
		case bool:
			*dst = v
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Sprintf("the %s parameter should be a boolean, not %q", key, v))
				return
			}
			*dst = b
		default:
			errs = append(errs, fmt.Sprintf("the %s parameter should be a boolean, not %T", key, v))
		}
	}
	integer := func(key string, dst *int64) {
		v := get(key)
		if v == nil {
			return
		}
		n, err := toInt64(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("the %s parameter must be an integer: %v", key, err))
			return
		}
		*dst = n
	}

	str("accesskey", &p.AccessKey)
	str("secretkey", &p.SecretKey)
	str("sessiontoken", &p.SessionToken)
	str("region", &p.Region)
	str("regionendpoint", &p.RegionEndpoint)
	boolean("forcepathstyle", &p.ForcePathStyle)
	str("bucket", &p.Bucket)
	str("rootdirectory", &p.RootDirectory)
	boolean("encrypt", &p.Encrypt)
	str("keyid", &p.KeyID)
	boolean("secure", &p.Secure)
	boolean("skipverify", &p.SkipVerify)
	boolean("v4auth", &p.V4Auth)
	integer("chunksize", &p.ChunkSize)
	integer("multipartcopychunksize", &p.MultipartCopyChunkSize)
	var copyConcurrency = int64(p.MultipartCopyMaxConcurrency)
	integer("multipartcopymaxconcurrency", &copyConcurrency)
	integer("multipartcopythresholdsize", &p.MultipartCopyThresholdSize)
	str("useragent", &p.UserAgent)
	boolean("usedualstack", &p.UseDualStack)
	boolean("accelerate", &p.Accelerate)
	var uploadConcurrency = int64(p.UploadConcurrency)
	integer("uploadconcurrency", &uploadConcurrency)
	var fips bool
	boolean("usefipsendpoint", &fips)
	if fips {
		errs = append(errs, "usefipsendpoint is not supported")
	}

	// registry:2 wants these two as strings, and is lenient about case
	// only for the storage class.
	switch v := get("storageclass").(type) {
	case nil:
	case string:
		p.StorageClass = strings.ToUpper(strings.TrimSpace(v))
	default:
		errs = append(errs, fmt.Sprintf("the storageclass parameter must be one of %v, not %T", storageClasses, v))
	}
	switch v := get("objectacl").(type) {
	case nil:
	case string:
		p.ObjectACL = strings.TrimSpace(v)
	default:
		errs = append(errs, fmt.Sprintf("invalid value for objectacl parameter: %v", v))
	}

	if len(errs) > 0 {
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

// toInt64 accepts the integer forms a YAML or JSON decoder or an
// environment variable produces.
func toInt64(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int64:
		return v, nil
	case uint:
		return toInt64(uint64(v))
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", v)
		}
		return int64(v), nil
	case float32:
		return toInt64(float64(v))
	case float64:
		if v != math.Trunc(v) || v > math.MaxInt64 || v < math.MinInt64 {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
	}
}
