package server

import "net/http"

// withHandlers serves extra handlers by exact path in front of the API
// (berth's token endpoint); everything else goes to next.
func withHandlers(next http.Handler, handlers map[string]http.Handler) http.Handler {
	if len(handlers) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handlers[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
