package s3

import (
	"context"
	"strings"
	"testing"
)

func TestFromMap(t *testing.T) {
	base := func() map[string]any { return map[string]any{"bucket": "b", "region": "us-west-1"} }
	with := func(kv ...any) map[string]any {
		m := base()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	def := DefaultParams()
	def.Bucket, def.Region = "b", "us-west-1"

	cases := []struct {
		name    string
		in      map[string]any
		want    func(*Params) // edits def into the expected value
		wantErr string        // substring of the error
	}{
		{name: "defaults", in: base(), want: func(p *Params) {}},
		{name: "registry:2 example", in: map[string]any{
			"accesskey": "awsaccesskey", "secretkey": "awssecretkey", "region": "us-west-1",
			"regionendpoint": "http://myobjects.local", "bucket": "bucketname", "encrypt": true,
			"keyid": "mykeyid", "secure": true, "v4auth": true, "chunksize": 5242880,
			"multipartcopychunksize": 33554432, "multipartcopymaxconcurrency": 100,
			"multipartcopythresholdsize": 33554432, "rootdirectory": "/s3/object/name/prefix",
		}, want: func(p *Params) {
			p.AccessKey, p.SecretKey = "awsaccesskey", "awssecretkey"
			p.RegionEndpoint, p.Bucket = "http://myobjects.local", "bucketname"
			p.Encrypt, p.KeyID = true, "mykeyid"
			p.ChunkSize = 5242880
			p.RootDirectory = "/s3/object/name/prefix"
		}},
		{name: "strings from REGISTRY_STORAGE_S3_* variables", in: with(
			"secure", "false", "v4auth", "False", "skipverify", "1", "forcepathstyle", "true", "encrypt", "TRUE",
			"chunksize", "6291456", "multipartcopychunksize", "0x800000", "multipartcopymaxconcurrency", " 7 ",
			"multipartcopythresholdsize", "0", "uploadconcurrency", "2",
		), want: func(p *Params) {
			p.Secure, p.V4Auth, p.SkipVerify, p.ForcePathStyle, p.Encrypt = false, false, true, true, true
			p.ChunkSize, p.MultipartCopyChunkSize, p.MultipartCopyMaxConcurrency = 6291456, 8<<20, 7
			p.MultipartCopyThresholdSize, p.UploadConcurrency = 0, 2
		}},
		{name: "integer types", in: with("chunksize", int64(7<<20), "multipartcopychunksize", uint64(6<<20),
			"multipartcopymaxconcurrency", float64(12), "multipartcopythresholdsize", int32(1<<20)),
			want: func(p *Params) {
				p.ChunkSize, p.MultipartCopyChunkSize, p.MultipartCopyMaxConcurrency, p.MultipartCopyThresholdSize = 7<<20, 6<<20, 12, 1<<20
			}},
		{name: "JSON float", in: with("chunksize", 1.048576e7), want: func(p *Params) { p.ChunkSize = 10485760 }},
		{name: "non-string scalars as strings", in: with("rootdirectory", 2024, "region", 1, "keyid", true),
			want: func(p *Params) { p.RootDirectory, p.Region, p.KeyID = "2024", "1", "true" }},
		{name: "storage class case", in: with("storageclass", "reduced_redundancy"), want: func(p *Params) { p.StorageClass = "REDUCED_REDUNDANCY" }},
		{name: "storage class none", in: with("storageclass", "NONE"), want: func(p *Params) { p.StorageClass = "NONE" }},
		{name: "object acl", in: with("objectacl", "bucket-owner-full-control"), want: func(p *Params) { p.ObjectACL = "bucket-owner-full-control" }},
		{name: "user agent and session token", in: with("useragent", "berth-test", "sessiontoken", "tok"),
			want: func(p *Params) { p.UserAgent, p.SessionToken = "berth-test", "tok" }},
		{name: "endpoint without region", in: with("region", nil, "regionendpoint", "minio:9000"),
			want: func(p *Params) { p.Region, p.RegionEndpoint = "", "minio:9000" }},
		{name: "keys in any case", in: map[string]any{"Bucket": "b", "REGION": "us-west-1", "AccessKey": "a", "SecretKey": "s"},
			want: func(p *Params) { p.AccessKey, p.SecretKey = "a", "s" }},
		{name: "accepted registry:2 extras", in: with("loglevel", "debug", "usedualstack", "true", "accelerate", false, "usefipsendpoint", "false"),
			want: func(p *Params) { p.UseDualStack = true }},

		{name: "no bucket", in: map[string]any{"region": "us-east-1"}, wantErr: "no bucket"},
		{name: "no region", in: with("region", nil), wantErr: "no region"},
		{name: "chunk size too small", in: with("chunksize", 5242879), wantErr: "chunksize"},
		{name: "chunk size too large", in: with("chunksize", int64(6<<30)), wantErr: "chunksize"},
		{name: "chunk size not a number", in: with("chunksize", "10MB"), wantErr: "chunksize"},
		{name: "chunk size fraction", in: with("chunksize", 5242880.5), wantErr: "chunksize"},
		{name: "copy concurrency zero", in: with("multipartcopymaxconcurrency", 0), wantErr: "multipartcopymaxconcurrency"},
		{name: "threshold negative", in: with("multipartcopythresholdsize", -1), wantErr: "multipartcopythresholdsize"},
		{name: "bool as number", in: with("secure", 1), wantErr: "secure"},
		{name: "bool unparsable", in: with("v4auth", "yes please"), wantErr: "v4auth"},
		{name: "bad storage class", in: with("storageclass", "DEEP_ARCHIVE"), wantErr: "storageclass"},
		{name: "storage class not a string", in: with("storageclass", 3), wantErr: "storageclass"},
		{name: "bad acl", in: with("objectacl", "everyone"), wantErr: "objectacl"},
		{name: "key without secret", in: with("accesskey", "a"), wantErr: "secretkey"},
		{name: "unknown key", in: with("bucketname", "x"), wantErr: "unknown parameter(s) bucketname"},
		{name: "fips", in: with("usefipsendpoint", true), wantErr: "usefipsendpoint"},
		{name: "map value", in: with("region", map[string]any{"a": 1}), wantErr: "region"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromMap(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromMap = %+v, %v; want an error about %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromMap: %v", err)
			}
			want := def
			tc.want(&want)
			if got != want {
				t.Fatalf("FromMap =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		edit    func(*Params)
		wantErr string
	}{
		{"ok", func(p *Params) {}, ""},
		{"zero sizes take defaults", func(p *Params) { p.ChunkSize, p.UploadConcurrency = 0, 0 }, ""},
		{"small chunks", func(p *Params) { p.ChunkSize = 1 << 20 }, "chunksize"},
		{"v2 on amazon", func(p *Params) { p.RegionEndpoint, p.V4Auth = "", false }, "v4"},
		{"endpoint with path", func(p *Params) { p.RegionEndpoint = "http://h:9000/bucket" }, "path"},
		{"endpoint scheme", func(p *Params) { p.RegionEndpoint = "ftp://h" }, "scheme"},
		{"kms", func(p *Params) { p.Encrypt, p.KeyID = true, "arn:aws:kms:us-east-1:1:key/x" }, ""},
		{"v2 on custom endpoint", func(p *Params) { p.V4Auth = false }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			p.Bucket, p.Region, p.RegionEndpoint = "b", "us-east-1", "http://127.0.0.1:1"
			tc.edit(&p)
			_, err := New(ctx, p)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("New: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("New = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint   string
		secure     bool
		wantHost   string
		wantSecure bool
	}{
		{"", true, "s3.amazonaws.com", true},
		{"minio:9000", false, "minio:9000", false},
		{"minio:9000", true, "minio:9000", true},
		{"http://myobjects.local", true, "myobjects.local", false},
		{"https://myobjects.local:8443/", false, "myobjects.local:8443", true},
	} {
		host, secure, err := parseEndpoint(Params{RegionEndpoint: tc.endpoint, Secure: tc.secure})
		if err != nil || host != tc.wantHost || secure != tc.wantSecure {
			t.Errorf("parseEndpoint(%q, secure=%v) = %q, %v, %v; want %q, %v", tc.endpoint, tc.secure, host, secure, err, tc.wantHost, tc.wantSecure)
		}
	}
}
