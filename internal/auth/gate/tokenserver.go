package gate

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/logctx"
)

// TokenHandler is berth's token endpoint (spec/auth/token.md and
// oauth.md): GET with optional Basic credentials, or POST with an OAuth2
// password or refresh_token grant. It answers with a token granting the
// intersection of the requested scopes and the policy, and, when asked
// (offline_token=true, access_type=offline), a refresh token that
// `docker login` stores instead of the password.
func (g *Gate) TokenHandler() http.Handler {
	return http.HandlerFunc(g.serveToken)
}

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (g *Gate) serveToken(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	var params map[string][]string
	post := false
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "malformed form body")
			return
		}
		params = r.PostForm
		post = true
	default:
		h.Set("Allow", "GET, HEAD, POST")
		tokenError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if svc := get("service"); svc != "" && svc != g.o.Service {
		tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "unknown service "+strconv.Quote(truncate(svc)))
		return
	}
	scopes, err := auth.ParseScopes(params["scope"])
	if err != nil {
		tokenError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
		return
	}
	if len(scopes) > maxScopes {
		tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "too many scopes")
		return
	}

	var who *auth.Principal
	var refresh string
	offline := false
	if post {
		switch get("grant_type") {
		case "password":
			who, err = g.login(r, nil, get("username"), get("password"))
			offline = get("access_type") == "offline"
		case "refresh_token":
			var c caller
			c, err = g.bearer(r, get("refresh_token"), token.KindRefresh)
			if err == nil && c.who == nil {
				err = errors.New("refresh token without an account")
			}
			if err != nil {
				tokenChallengeError(w, g, http.StatusUnauthorized, "UNAUTHORIZED", "invalid refresh token: "+err.Error())
				return
			}
			who, refresh = c.who, get("refresh_token")
		default:
			tokenError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type (want password or refresh_token)")
			return
		}
	} else if vals := r.Header.Values("Authorization"); len(vals) > 0 {
		if len(vals) > 1 || len(vals[0]) > MaxAuthorization {
			tokenChallengeError(w, g, http.StatusUnauthorized, "UNAUTHORIZED", "malformed Authorization header")
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			tokenChallengeError(w, g, http.StatusUnauthorized, "UNAUTHORIZED", "the token endpoint takes Basic credentials")
			return
		}
		who, err = g.login(r, nil, user, pass)
		offline = get("offline_token") == "true"
	} else {
		who = g.certPrincipal(r)
	}
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			for k, v := range ae.Header {
				h[k] = v
			}
			if ae.Status == http.StatusUnauthorized {
				tokenChallengeError(w, g, ae.Status, ae.Code, ae.Message)
				return
			}
			tokenError(w, ae.Status, ae.Code, ae.Message)
			return
		}
		return // the client went away
	}

	if who != nil {
		logctx.SetAccount(r.Context(), who.Account) // for the access log
	}
	granted := g.pol.Grant(who, scopes)
	now := g.o.Now()
	bc := &token.BerthClaims{Kind: token.KindAccess}
	claims := token.Claims{
		Audience:  []string{g.o.Service},
		IssuedAt:  now,
		NotBefore: now.Add(-10 * time.Second),
		Expiry:    now.Add(g.o.Expiry),
		Access:    granted,
		Berth:     bc,
	}
	account := ""
	if who != nil {
		account = who.Account
		claims.Subject = who.Account
		bc.Source, bc.Ref, bc.Groups = who.Source, who.Ref, who.Groups
	}
	access, err := g.o.Signer.Sign(claims)
	if err != nil {
		g.logger(r).Error("signing a token failed", "err", err)
		tokenError(w, http.StatusInternalServerError, "UNKNOWN", "internal server error")
		return
	}
	resp := tokenResponse{
		Token:       access,
		AccessToken: access,
		ExpiresIn:   int(g.o.Expiry / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	}
	if post {
		resp.Scope = auth.Scope(granted)
	}
	if who != nil && offline && refresh == "" {
		refresh, err = g.o.Signer.Sign(token.Claims{
			Subject:  who.Account,
			Audience: []string{g.o.Service},
			IssuedAt: now,
			Expiry:   now.Add(g.o.RefreshExpiry),
			Berth:    &token.BerthClaims{Kind: token.KindRefresh, Source: who.Source, Ref: who.Ref, Groups: who.Groups},
		})
		if err != nil {
			g.logger(r).Error("signing a refresh token failed", "err", err)
			tokenError(w, http.StatusInternalServerError, "UNKNOWN", "internal server error")
			return
		}
	}
	resp.RefreshToken = refresh
	g.logger(r).Info("token issued", "account", account, "requested", auth.Scope(scopes), "granted", auth.Scope(granted),
		"refresh", resp.RefreshToken != "", "remote", g.clientIP(r))
	body, _ := json.Marshal(resp)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// tokenChallengeError is a 401 from the token endpoint, with a Basic
// challenge so command-line clients know to send credentials.
func tokenChallengeError(w http.ResponseWriter, g *Gate, status int, code, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm=`+quote(g.o.Service))
	tokenError(w, status, code, msg)
}

// tokenError writes the registry's error envelope, which docker and the
// containers/image library both understand from a token server.
func tokenError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
