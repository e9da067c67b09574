package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
