package server

import (
	"net/http"
	"strings"
)

// withHandlers serves extra handlers in front of the API (berth's token
// endpoint, the web UI): a path ending in "/" serves that subtree (its
// root without the slash is redirected to it, as http.ServeMux does),
// any other path only itself; everything else goes to next. API requests
// are recognised by their "/v2/" prefix first and pay for nothing more.
func withHandlers(next http.Handler, handlers map[string]http.Handler) http.Handler {
	if len(handlers) == 0 {
		return next
	}
	exact := map[string]http.Handler{}
	var subtrees []string
	for p := range handlers {
		if strings.HasSuffix(p, "/") {
			subtrees = append(subtrees, p)
			exact[strings.TrimSuffix(p, "/")] = redirectToSubtree(p)
		}
	}
	for p, h := range handlers {
		exact[p] = h // an exact path wins over a subtree's redirect
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/v2/") {
			next.ServeHTTP(w, r)
			return
		}
		if h, ok := exact[p]; ok {
			h.ServeHTTP(w, r)
			return
		}
		for _, s := range subtrees {
			if strings.HasPrefix(p, s) {
				handlers[s].ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// redirectToSubtree sends "/ui" to "/ui/". The Location is relative to the
// request ("ui/"), so it is right below any http.prefix, which the request
// path seen here has lost (http.Redirect would make it absolute from that).
func redirectToSubtree(p string) http.Handler {
	p = strings.TrimSuffix(p, "/")
	rel := p[strings.LastIndexByte(p, '/')+1:] + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc := rel
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusMovedPermanently)
	})
}
