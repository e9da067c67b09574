package forwarded

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestExternalURL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		host    string // http.host
		tls     bool
		reqHost string
		hdr     map[string]string
		want    string
	}{
		{name: "plain", reqHost: "127.0.0.1:5000", want: "http://127.0.0.1:5000"},
		{name: "direct TLS", tls: true, reqHost: "registry.example.com:5000", want: "https://registry.example.com:5000"},
		{name: "http.host wins", host: "https://registry.example.com/", reqHost: "10.0.0.1:5000",
			hdr: map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil"}, want: "https://registry.example.com"},
		{name: "nginx seed 002: Host $http_host, X-Forwarded-Proto $scheme", reqHost: "registry.example.com",
			hdr: map[string]string{"X-Forwarded-Proto": "https"}, want: "https://registry.example.com"},
		{name: "apache: X-Forwarded-Host, proto from RequestHeader", reqHost: "localhost:5000",
			hdr: map[string]string{"X-Forwarded-Host": "registry.example.com:8443", "X-Forwarded-Proto": "https"}, want: "https://registry.example.com:8443"},
		{name: "chain of proxies: first entry", reqHost: "localhost:5000",
			hdr: map[string]string{"X-Forwarded-Host": "a.example.com, b.internal", "X-Forwarded-Proto": "https, http"}, want: "https://a.example.com"},
		{name: "X-Forwarded-Port added", reqHost: "localhost:5000",
			hdr: map[string]string{"X-Forwarded-Host": "r.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}, want: "https://r.example.com:8443"},
		{name: "X-Forwarded-Port default omitted", reqHost: "localhost:5000",
			hdr: map[string]string{"X-Forwarded-Host": "r.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}, want: "https://r.example.com"},
		{name: "RFC 7239 Forwarded", reqHost: "localhost:5000",
			hdr: map[string]string{"Forwarded": `for=192.0.2.60;proto=https;host="r.example.com:444", for=10.0.0.1`, "X-Forwarded-Proto": "http"}, want: "https://r.example.com:444"},
		{name: "IPv6", reqHost: "[::1]:5000", hdr: map[string]string{"X-Forwarded-Host": "[2001:db8::1]:443"}, want: "http://[2001:db8::1]:443"},
		{name: "bad proto ignored", tls: true, reqHost: "r.example.com", hdr: map[string]string{"X-Forwarded-Proto": "javascript"}, want: "https://r.example.com"},
		{name: "host with path ignored", reqHost: "r.example.com", hdr: map[string]string{"X-Forwarded-Host": "evil.com/x?"}, want: "http://r.example.com"},
		{name: "host with userinfo ignored", reqHost: "r.example.com", hdr: map[string]string{"X-Forwarded-Host": "a@evil.com"}, want: "http://r.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.Host = tc.reqHost
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if got := ExternalURL(r, tc.host); got != tc.want {
				t.Errorf("ExternalURL = %q, want %q", got, tc.want)
			}
		})
	}
}
