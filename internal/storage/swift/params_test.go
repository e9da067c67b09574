package swift

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestFromMap(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"username": "u", "password": "p", "authurl": "https://keystone/v3", "container": "c"}
	}
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
	def.Username, def.Password, def.AuthURL, def.Container = "u", "p", "https://keystone/v3", "c"

	cases := []struct {
		name    string
		in      map[string]any
		want    func(*Params) // edits def into the expected value
		wantErr string        // substring of the error
	}{
		{name: "defaults", in: base(), want: func(p *Params) {}},
		{name: "registry:2 documented keys", in: map[string]any{
			"username": "username", "password": "password",
			"authurl": "https://storage.myprovider.com/v3/auth",
			"tenant":  "tenantname", "tenantid": "tenantid", "domain": "domainname", "domainid": "domainid",
			"tenantdomain": "td", "tenantdomainid": "tdid", "trustid": "trust",
			"insecureskipverify": true, "region": "fr", "container": "containername",
			"prefix": "/swift/object/name/prefix", "secretkey": "secret", "accesskey": "access",
			"authversion": 3, "endpointtype": "internal", "chunksize": 5242880,
			"tempurlcontainerkey": true, "tempurlmethods": []any{"GET", "head"},
		}, want: func(p *Params) {
			*p = Params{
				Username: "username", Password: "password", AuthURL: "https://storage.myprovider.com/v3/auth",
				Tenant: "tenantname", TenantID: "tenantid", Domain: "domainname", DomainID: "domainid",
				TenantDomain: "td", TenantDomainID: "tdid", TrustID: "trust",
				InsecureSkipVerify: true, Region: "fr", Container: "containername",
				Prefix: "/swift/object/name/prefix", SecretKey: "secret", AccessKey: "access",
				AuthVersion: 3, EndpointType: "internal", ChunkSize: 5242880,
				TempURLContainerKey: true, TempURLMethods: []string{"GET", "HEAD"},
			}
		}},
		{name: "strings from REGISTRY_STORAGE_SWIFT_* variables", in: with(
			"insecureskipverify", "True", "authversion", "2", "chunksize", " 0x200000 ",
			"tempurlcontainerkey", "1", "tempurlmethods", "GET, PUT", "endpointtype", "Admin",
		), want: func(p *Params) {
			p.InsecureSkipVerify, p.AuthVersion, p.ChunkSize = true, 2, 2<<20
			p.TempURLContainerKey, p.TempURLMethods, p.EndpointType = true, []string{"GET", "PUT"}, "admin"
		}},
		{name: "integer types", in: with("chunksize", int64(3<<20), "authversion", uint8(1)),
			want: func(p *Params) { p.ChunkSize, p.AuthVersion = 3<<20, 1 }},
		{name: "JSON numbers", in: with("chunksize", 2.097152e6, "authversion", float64(3)),
			want: func(p *Params) { p.ChunkSize, p.AuthVersion = 2<<20, 3 }},
		{name: "non-string scalars as strings", in: with("password", 1234, "tenantid", int64(42), "container", true),
			want: func(p *Params) { p.Password, p.TenantID, p.Container = "1234", "42", "true" }},
		{name: "key case", in: with("ChunkSize", 4<<20, "AuthURL", "http://x/auth/v1.0", "authurl", nil),
			want: func(p *Params) { p.ChunkSize, p.AuthURL = 4<<20, "http://x/auth/v1.0" }},
		{name: "tempurlmethods as []string", in: with("tempurlmethods", []string{"get"}),
			want: func(p *Params) { p.TempURLMethods = []string{"GET"} }},
		{name: "rootdirectory accepted and ignored", in: with("rootdirectory", "/swift/object/name/prefix"),
			want: func(p *Params) { p.Warnings = []string{ignoredKeys["rootdirectory"]} }},

		{name: "unknown key", in: with("bucket", "b", "zzz", 1), wantErr: "unknown parameter(s) bucket, zzz"},
		{name: "no username", in: with("username", nil), wantErr: "no username"},
		{name: "no password", in: with("password", ""), wantErr: "no password"},
		{name: "no authurl", in: with("authurl", nil), wantErr: "no authurl"},
		{name: "no container", in: with("container", nil), wantErr: "no container"},
		{name: "container with slash", in: with("container", "a/b"), wantErr: "must not contain '/'"},
		{name: "chunksize too small", in: with("chunksize", 1<<20-1), wantErr: "chunksize parameter should be a number between 1048576 and 5368709120"},
		{name: "chunksize too large", in: with("chunksize", int64(5<<30+1)), wantErr: "chunksize"},
		{name: "chunksize not a number", in: with("chunksize", "20MB"), wantErr: "chunksize parameter must be an integer"},
		{name: "chunksize fraction", in: with("chunksize", 1.5e6+0.5), wantErr: "not an integer"},
		{name: "bad bool", in: with("insecureskipverify", "maybe"), wantErr: "insecureskipverify parameter should be a boolean"},
		{name: "bool of wrong type", in: with("insecureskipverify", 1), wantErr: "should be a boolean, not int"},
		{name: "authversion", in: with("authversion", 4), wantErr: "authversion parameter must be 1, 2 or 3"},
		{name: "endpointtype", in: with("endpointtype", "private"), wantErr: "endpointtype parameter must be"},
		{name: "string of wrong type", in: with("username", []any{"a"}), wantErr: "username parameter should be a string"},
		{name: "tempurlmethods of wrong type", in: with("tempurlmethods", 3), wantErr: "tempurlmethods parameter should be a list"},
		{name: "tempurlmethods holding a number", in: with("tempurlmethods", []any{"GET", 1}), wantErr: "list of strings"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromMap(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromMap = %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromMap: %v", err)
			}
			want := def
			want.TempURLMethods = nil
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("FromMap =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	p := DefaultParams()
	p.Username, p.Password, p.AuthURL, p.Container = "u", "p", "http://127.0.0.1:1/auth/v1.0", "c"
	p.ChunkSize = 100
	if _, err := New(context.Background(), p); err == nil || !strings.Contains(err.Error(), "chunksize") {
		t.Fatalf("New with chunksize 100 = %v", err)
	}
	p.ChunkSize = 0 // the default
	p.Container = ""
	if _, err := New(context.Background(), p); err == nil || !strings.Contains(err.Error(), "container") {
		t.Fatalf("New without container = %v", err)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"2.30.1": true, "2.3.0": true, "2.3": true, "2.2.2": false, "3.0.0": true,
		"2.10.0": true, "1.99.9": false, "2.3.0.dev12": true, "": false, "x": false,
	} {
		if got := versionAtLeast(v, 2, 3, 0); got != want {
			t.Errorf("versionAtLeast(%q, 2.3.0) = %v, want %v", v, got, want)
		}
	}
}
