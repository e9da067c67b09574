package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
)

func user(name string, groups ...string) *auth.Principal {
	return &auth.Principal{Account: name, Groups: groups}
}

func mustNew(t *testing.T, rules ...Rule) *Policy {
	t.Helper()
	p, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type check struct {
	name string
	who  *auth.Principal
	repo string
	want []string
}

func runChecks(t *testing.T, p *Policy, checks []check) {
	t.Helper()
	for _, c := range checks {
		got := p.Actions(c.who, c.repo)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Actions(%v, %q) = %q, want %q", c.name, c.who, c.repo, got, want)
		}
	}
}

// Seed 003: cesanta/docker_auth's ACL.
func TestSeedDockerAuthACL(t *testing.T) {
	p := mustNew(t,
		Rule{Account: []string{"admin"}, Actions: []string{"*"}},
		Rule{Account: []string{"/.+/"}, Repository: []string{"${account}/*"}, Actions: []string{"*"}},
	)
	runChecks(t, p, []check{
		{"admin anywhere", user("admin"), "anything/at/all", All},
		{"own namespace", user("jgsqware"), "jgsqware/ubuntu-git", All},
		{"own namespace nested", user("jgsqware"), "jgsqware/a/b", All},
		{"bare own name", user("jgsqware"), "jgsqware", nil},
		{"other namespace", user("jgsqware"), "admin/x", nil},
		{"prefix trick", user("jg"), "jgsqware/x", nil},
		{"anonymous", nil, "jgsqware/x", nil},
	})
}

// Seed 000: two customer groups pull, the owner pushes.
func TestSeedCustomers(t *testing.T) {
	p := mustNew(t,
		Rule{Account: []string{"owner"}, Actions: []string{"*"}},
		Rule{Group: []string{"fpro", "fent"}, Actions: []string{"pull"}},
	)
	runChecks(t, p, []check{
		{"owner", user("owner"), "example/faktory", All},
		{"pro customer", user("foobar", "fpro"), "example/faktory", []string{"pull"}},
		{"ent customer", user("baz", "fent"), "example/faktory-ent", []string{"pull"}},
		{"no group", user("stranger"), "example/faktory", nil},
		{"anonymous", nil, "example/faktory", nil},
	})
	if !p.MayList(user("foobar", "fpro")) || p.MayList(nil) {
		t.Error("MayList: users may list, anonymous may not")
	}
}

// Seed 002: anonymous pull, administrators push.
func TestSeedAnonymousPull(t *testing.T) {
	p := mustNew(t,
		Rule{Group: []string{"admins"}, Actions: []string{"*"}},
		Rule{Actions: []string{"pull"}},
	)
	runChecks(t, p, []check{
		{"anonymous pulls", nil, "ubuntu", []string{"pull"}},
		{"user pulls", user("joe"), "ubuntu", []string{"pull"}},
		{"admin pushes", user("root", "admins"), "ubuntu", All},
	})
	if !p.MayList(nil) {
		t.Error("anonymous may list when anonymous may pull")
	}
}

func TestOrderAndDeny(t *testing.T) {
	p := mustNew(t,
		Rule{Repository: []string{"secret/**"}, Account: []string{"*"}, Actions: nil},
		Rule{Group: []string{"team-*"}, Repository: []string{"${group}/*"}, Actions: []string{"pull", "push"}},
		Rule{Anonymous: true, Repository: []string{"public/*", "mirror/?ebian"}, Actions: []string{"pull"}},
		Rule{Account: []string{"*"}, Actions: []string{"pull"}},
	)
	runChecks(t, p, []check{
		{"deny rule first", user("x", "team-secret"), "secret/a", nil},
		{"group placeholder", user("x", "team-a", "team-b"), "team-b/app", []string{"pull", "push"}},
		{"group placeholder other group", user("x", "team-a"), "team-b/app", []string{"pull"}},
		{"anonymous public", nil, "public/x", []string{"pull"}},
		{"anonymous ?", nil, "mirror/debian", []string{"pull"}},
		{"anonymous ? one char", nil, "mirror/ddebian", nil},
		{"anonymous private", nil, "private/x", nil},
		{"anonymous rule does not match users", user("y"), "public/x", []string{"pull"}},
	})
}

func TestPlaceholdersAreLiteral(t *testing.T) {
	p := mustNew(t,
		Rule{Account: []string{"*"}, Repository: []string{"${account}/*"}, Actions: []string{"push"}},
		Rule{Account: []string{"*"}, Repository: []string{"/u-${account}-[0-9]+/"}, Actions: []string{"pull"}},
	)
	runChecks(t, p, []check{
		{"glob chars in account", user("a*"), "abc/x", nil},
		{"regexp chars in account", user("a.c"), "u-abc-1", nil},
		{"regexp placeholder", user("a.c"), "u-a.c-12", []string{"pull"}},
		{"exact", user("a.c"), "a.c/x", []string{"push"}},
	})
}

func TestGrant(t *testing.T) {
	p := mustNew(t,
		Rule{Account: []string{"admin"}, Actions: []string{"*"}},
		Rule{Account: []string{"*"}, Repository: []string{"${account}/*"}, Actions: []string{"pull", "push"}},
		Rule{Anonymous: true, Actions: []string{"pull"}},
	)
	want := []auth.Access{
		auth.Repository("alice/app", "pull", "push", "delete"),
		auth.Repository("bob/app", "pull", "push"),
		auth.Repository("alice/x", "*"),
		auth.Catalog,
	}
	got := p.Grant(user("alice"), want)
	exp := []auth.Access{auth.Repository("alice/app", "pull", "push"), auth.Catalog}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("alice: %v, want %v", got, exp)
	}
	got = p.Grant(user("admin"), want)
	exp = []auth.Access{
		auth.Repository("alice/app", "pull", "push", "delete"),
		auth.Repository("bob/app", "pull", "push"),
		auth.Repository("alice/x", "*"),
		auth.Catalog,
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("admin: %v, want %v", got, exp)
	}
	got = p.Grant(nil, want)
	exp = []auth.Access{auth.Repository("alice/app", "pull"), auth.Repository("bob/app", "pull"), auth.Catalog}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("anonymous: %v, want %v", got, exp)
	}
	if g := AnyUser().Grant(nil, want); len(g) != 0 {
		t.Errorf("AnyUser grants anonymous %v", g)
	}
	var zero *Policy
	if g := zero.Grant(user("a"), want[:1]); len(g) != 0 {
		t.Errorf("nil policy grants %v", g)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{Actions: []string{"pull", "frob"}}, "unknown action"},
		{Rule{Anonymous: true, Account: []string{"a"}}, "anonymous cannot"},
		{Rule{Anonymous: true, Repository: []string{"${account}/*"}}, "anonymous caller"},
		{Rule{Repository: []string{"${user}/*"}}, "unknown placeholder"},
		{Rule{Account: []string{"${account}"}}, "only allowed in repository"},
		{Rule{Repository: []string{"/[a-/"}}, "error parsing"},
		{Rule{Repository: []string{"/${account}(/"}}, "error parsing"},
		{Rule{Group: []string{""}}, "empty pattern"},
	}
	for _, tc := range tests {
		_, err := New([]Rule{{Actions: []string{"pull"}}, tc.rule})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "rule 2:") {
			t.Errorf("%+v: err = %v, want %q", tc.rule, err, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		ok     bool
	}{
		{"*", "a/b/c", true},
		{"a/*", "a/", true},
		{"a/*", "a", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"**", "", true},
		{"abc", "abcd", false},
		{"*abc", "xxabcabc", true},
	}
	for _, tc := range tests {
		p, err := compilePattern(tc.pat, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.match(tc.s, nil); got != tc.ok {
			t.Errorf("%q ~ %q = %v, want %v", tc.pat, tc.s, got, tc.ok)
		}
	}
}
