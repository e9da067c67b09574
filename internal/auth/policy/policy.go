// Package policy decides what a caller may do on a repository: an ordered
// list of rules, each matching callers (an account, a group, anonymous, or
// everyone) and repositories (glob or regular expression patterns, with
// ${account} and ${group} placeholders), and granting actions. The first
// rule matching both the caller and the repository decides; a rule with no
// actions denies. Nothing matching means denied.
package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/berth-registry/berth/internal/auth"
)

// Rule is one policy entry as configured.
type Rule struct {
	// Account patterns: the caller's account must match one. "*" matches
	// every authenticated account.
	Account []string
	// Group patterns: one of the caller's groups must match one.
	Group []string
	// Anonymous makes the rule match only callers without credentials.
	Anonymous bool
	// Repository patterns; empty means every repository. They may use
	// ${account} and ${group} (any of the caller's groups).
	Repository []string
	// Actions granted: pull, push, delete, or "*" for all three. Empty
	// denies.
	Actions []string
}

// A rule with no Account, Group or Anonymous matches every caller,
// anonymous included.

// Policy is a compiled rule list. The zero value denies everything.
type Policy struct {
	rules []rule
}

type rule struct {
	src       Rule
	accounts  []*pattern
	groups    []*pattern
	repos     []*pattern
	anonymous bool
	everyone  bool
	actions   []string // expanded: "*" becomes pull, push, delete
}

// All is the actions "*" stands for.
var All = []string{auth.ActionPull, auth.ActionPush, auth.ActionDelete}

// New compiles rules, reporting the first invalid one by its index.
func New(rules []Rule) (*Policy, error) {
	p := &Policy{}
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		p.rules = append(p.rules, c)
	}
	return p, nil
}

// AnyUser is the policy of registry:2's htpasswd and token setups without
// berth rules: every authenticated caller may do everything, anonymous
// callers nothing.
func AnyUser() *Policy {
	p, _ := New([]Rule{{Account: []string{"*"}, Actions: []string{auth.ActionAll}}})
	return p
}

func compileRule(r Rule) (rule, error) {
	c := rule{src: r, anonymous: r.Anonymous}
	if r.Anonymous && (len(r.Account) > 0 || len(r.Group) > 0) {
		return c, fmt.Errorf("anonymous cannot be combined with account or group")
	}
	c.everyone = !r.Anonymous && len(r.Account) == 0 && len(r.Group) == 0
	var err error
	if c.accounts, err = compileAll(r.Account, false); err != nil {
		return c, fmt.Errorf("account: %w", err)
	}
	if c.groups, err = compileAll(r.Group, false); err != nil {
		return c, fmt.Errorf("group: %w", err)
	}
	if c.repos, err = compileAll(r.Repository, true); err != nil {
		return c, fmt.Errorf("repository: %w", err)
	}
	for _, p := range c.repos {
		if r.Anonymous && p.uses("account") {
			return c, fmt.Errorf("repository %q uses ${account}, which an anonymous caller does not have", p.src)
		}
	}
	for _, a := range r.Actions {
		switch a {
		case auth.ActionAll:
			c.actions = addAll(c.actions, All...)
		case auth.ActionPull, auth.ActionPush, auth.ActionDelete:
			c.actions = addAll(c.actions, a)
		default:
			return c, fmt.Errorf("unknown action %q (want pull, push, delete or *)", a)
		}
	}
	return c, nil
}

func addAll(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func compileAll(srcs []string, placeholders bool) ([]*pattern, error) {
	var out []*pattern
	for _, s := range srcs {
		p, err := compilePattern(s, placeholders)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Actions returns what who (nil: anonymous) may do on repo: the actions of
// the first rule matching both, or none.
func (p *Policy) Actions(who *auth.Principal, repo string) []string {
	if p == nil {
		return nil
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.matchesCaller(who) && r.matchesRepo(who, repo) {
			return slices.Clone(r.actions)
		}
	}
	return nil
}

// Allows reports whether who may perform action on repo.
func (p *Policy) Allows(who *auth.Principal, repo, action string) bool {
	acts := p.Actions(who, repo)
	if action == auth.ActionAll {
		return len(acts) == len(All)
	}
	return slices.Contains(acts, action)
}

// MayList reports whether who may list the catalog (which then shows only
// the repositories who may pull): every authenticated caller, and
// anonymous callers if some rule may grant them anything.
func (p *Policy) MayList(who *auth.Principal) bool {
	if who != nil {
		return true
	}
	if p == nil {
		return false
	}
	for _, r := range p.rules {
		if (r.anonymous || r.everyone) && len(r.actions) > 0 {
			return true
		}
	}
	return false
}

// Grant intersects the wanted access with what who may do, as a token
// server must: resources or actions not allowed are left out, never an
// error. "*" is granted only where all actions are.
func (p *Policy) Grant(who *auth.Principal, want []auth.Access) []auth.Access {
	var out []auth.Access
	for _, w := range want {
		g := auth.Access{Type: w.Type, Name: w.Name}
		switch w.Type {
		case "repository":
			allowed := p.Actions(who, w.Name)
			for _, a := range w.Actions {
				if a == auth.ActionAll && len(allowed) == len(All) || slices.Contains(allowed, a) {
					g.Actions = addAll(g.Actions, a)
				}
			}
		case "registry":
			if w.Name == auth.Catalog.Name && p.MayList(who) && slices.Contains(w.Actions, auth.ActionAll) {
				g.Actions = []string{auth.ActionAll}
			}
		}
		if len(g.Actions) > 0 {
			out = append(out, g)
		}
	}
	return out
}

func (r *rule) matchesCaller(who *auth.Principal) bool {
	switch {
	case r.everyone:
		return true
	case r.anonymous:
		return who == nil
	case who == nil:
		return false
	}
	for _, a := range r.accounts {
		if a.match(who.Account, nil) {
			return true
		}
	}
	for _, g := range r.groups {
		for _, have := range who.Groups {
			if g.match(have, nil) {
				return true
			}
		}
	}
	return false
}

func (r *rule) matchesRepo(who *auth.Principal, repo string) bool {
	if len(r.repos) == 0 {
		return true
	}
	for _, p := range r.repos {
		vars := map[string]string{}
		if p.uses("account") {
			if who == nil {
				continue
			}
			vars["account"] = who.Account
		}
		if !p.uses("group") {
			if p.match(repo, vars) {
				return true
			}
			continue
		}
		if who == nil {
			continue
		}
		for _, g := range who.Groups {
			vars["group"] = g
			if p.match(repo, vars) {
				return true
			}
		}
	}
	return false
}

// pattern is a glob ("*" any run of characters, "/" included; "?" one
// character; "\" escapes) or, between slashes, a regular expression
// matched against the whole string. Placeholders ${account} and ${group}
// stand for the caller's values, matched literally.
type pattern struct {
	src   string
	re    *regexp.Regexp // regular expression without placeholders
	reSrc string         // regular expression with placeholders
	glob  []tok
	vars  []string

	mu    sync.Mutex
	cache map[string]*regexp.Regexp
}

type tokKind int

const (
	tLit tokKind = iota
	tStar
	tOne
	tVar
)

type tok struct {
	kind tokKind
	s    string
}

var placeholderRE = regexp.MustCompile(`\$\{([^}]*)\}`)

func compilePattern(s string, placeholders bool) (*pattern, error) {
	if s == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	p := &pattern{src: s}
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		name := m[1]
		if !placeholders {
			return nil, fmt.Errorf("%q: placeholders are only allowed in repository patterns", s)
		}
		if name != "account" && name != "group" {
			return nil, fmt.Errorf("%q: unknown placeholder ${%s} (want ${account} or ${group})", s, name)
		}
		if !slices.Contains(p.vars, name) {
			p.vars = append(p.vars, name)
		}
	}
	if len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' {
		body := s[1 : len(s)-1]
		if len(p.vars) == 0 {
			re, err := regexp.Compile(`^(?:` + body + `)$`)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", s, err)
			}
			p.re = re
			return p, nil
		}
		// Check the expression compiles with a sample substitution.
		if _, err := regexp.Compile(`^(?:` + substitute(body, map[string]string{"account": "a", "group": "g"}, true) + `)$`); err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		p.reSrc = body
		p.cache = map[string]*regexp.Regexp{}
		return p, nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '*':
			if len(p.glob) == 0 || p.glob[len(p.glob)-1].kind != tStar {
				p.glob = append(p.glob, tok{kind: tStar})
			}
		case c == '?':
			p.glob = append(p.glob, tok{kind: tOne})
		case c == '\\' && i+1 < len(s):
			i++
			p.glob = appendLit(p.glob, s[i:i+1])
		case c == '$' && strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			p.glob = append(p.glob, tok{kind: tVar, s: s[i+2 : i+end]})
			i += end
		default:
			p.glob = appendLit(p.glob, s[i:i+1])
		}
	}
	return p, nil
}

func appendLit(toks []tok, s string) []tok {
	if n := len(toks); n > 0 && toks[n-1].kind == tLit {
		toks[n-1].s += s
		return toks
	}
	return append(toks, tok{kind: tLit, s: s})
}

func (p *pattern) uses(v string) bool { return slices.Contains(p.vars, v) }

func substitute(s string, vars map[string]string, quote bool) string {
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		v := vars[m[2:len(m)-1]]
		if quote {
			return regexp.QuoteMeta(v)
		}
		return v
	})
}

func (p *pattern) match(s string, vars map[string]string) bool {
	switch {
	case p.re != nil:
		return p.re.MatchString(s)
	case p.reSrc != "":
		src := `^(?:` + substitute(p.reSrc, vars, true) + `)$`
		p.mu.Lock()
		re, ok := p.cache[src]
		if !ok {
			re = regexp.MustCompile(src) // validated at compile time
			if len(p.cache) > 1000 {
				clear(p.cache)
			}
			p.cache[src] = re
		}
		p.mu.Unlock()
		return re.MatchString(s)
	}
	// Expand placeholders to literals, then match the glob.
	toks := p.glob
	if len(p.vars) > 0 {
		toks = make([]tok, 0, len(p.glob))
		for _, t := range p.glob {
			if t.kind == tVar {
				v, ok := vars[t.s]
				if !ok || v == "" {
					return false
				}
				t = tok{kind: tLit, s: v}
			}
			toks = append(toks, t)
		}
	}
	return globMatch(toks, s)
}

// globMatch matches with the usual single-star backtracking.
func globMatch(toks []tok, s string) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case tStar:
				starT, starS = ti, si
				ti++
				continue
			case tOne:
				if si < len(s) {
					ti++
					si++
					continue
				}
			case tLit:
				if strings.HasPrefix(s[si:], t.s) {
					ti++
					si += len(t.s)
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if starT < 0 || starS >= len(s) {
			return false
		}
		starS++
		ti, si = starT+1, starS
	}
}
