package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// Extra handlers (the token endpoint) are served by exact path below the
// prefix, beside the API.
func TestHandlersBesideTheAPI(t *testing.T) {
	token := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "token endpoint") })
	srv, err := New(context.Background(), Options{
		Driver:   inmemory.New(),
		Prefix:   "/registry",
		Handlers: map[string]http.Handler{"/auth/token": token},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/registry/auth/token", 200, "token endpoint"},
		{"/registry/v2/", 200, "{}"},
		{"/registry/auth/token/x", 404, ""},
		{"/auth/token", 404, ""},
	} {
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		if w.Code != tc.status || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s: %d %q", tc.path, w.Code, w.Body.String())
		}
	}
}

// The web UI is a subtree below the prefix, beside exact-path handlers;
// turned off (berth.ui.enabled: false) its paths are the API's 404s.
func TestUIMounting(t *testing.T) {
	token := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "token endpoint") })
	for _, enabled := range []bool{true, false} {
		srv, err := New(context.Background(), Options{
			Driver:   inmemory.New(),
			Prefix:   "/registry",
			Handlers: map[string]http.Handler{"/auth/token": token},
			UI:       enabled,
			Logger:   slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		uiStatus := func(on, off int) int {
			if enabled {
				return on
			}
			return off
		}
		for _, tc := range []struct {
			path   string
			status int
			body   string
		}{
			{"/registry/ui/", uiStatus(200, 404), ""},
			{"/registry/ui/r/a/b", uiStatus(404, 404), ""},
			{"/registry/ui", uiStatus(301, 404), ""},
			{"/ui/", 404, ""},
			{"/registry/uix", 404, ""},
			{"/registry/auth/token", 200, "token endpoint"},
			{"/registry/v2/", 200, "{}"},
			{"/registry/v2/ui/tags/list", 404, ""}, // the API's: an unknown repository named "ui"
		} {
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
			if w.Code != tc.status || (tc.body != "" && w.Body.String() != tc.body) {
				t.Errorf("ui %v: %s: %d %q", enabled, tc.path, w.Code, w.Body.String())
			}
			isHTML := strings.HasPrefix(w.Header().Get("Content-Type"), "text/html")
			if wantHTML := enabled && strings.HasPrefix(tc.path, "/registry/ui/"); isHTML != wantHTML {
				t.Errorf("ui %v: %s: Content-Type %q", enabled, tc.path, w.Header().Get("Content-Type"))
			}
		}
	}
}
