package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Access
		err  bool
	}{
		{in: "repository:a/b:pull,push", want: Access{"repository", "a/b", []string{"pull", "push"}}},
		{in: "repository:a:pull,pull,,push", want: Access{"repository", "a", []string{"pull", "push"}}},
		{in: "repository(plugin):a/b:pull", want: Access{"repository", "a/b", []string{"pull"}}},
		{in: "repository:a:*", want: Access{"repository", "a", []string{"*"}}},
		{in: "repository:a:", want: Access{"repository", "a", nil}},
		{in: "registry:catalog:*", want: Access{"registry", "catalog", []string{"*"}}},
		{in: "repository:a:frobnicate", want: Access{"repository", "a", []string{"frobnicate"}}},
		{in: "repository:../x:push", err: true},
		{in: "repository:a/../b:push", err: true},
		{in: "repository:/a:push", err: true},
		{in: "repository:a//b:push", err: true},
		{in: "repository:A:push", err: true},
		{in: "repository:a%2fb:push", err: true},
		{in: "repository:localhost:5000/a:pull", err: true},
		{in: "repository::pull", err: true},
		{in: "repository:a", err: true},
		{in: "repository", err: true},
		{in: "", err: true},
		{in: "registry:other:*", err: true},
		{in: "namespace:a:pull", err: true},
		{in: "repository(plugin:a:pull", err: true},
		{in: "repository:a b:pull", err: true},
		{in: "repository:a\":pull", err: true},
		{in: "repository:a\x00:pull", err: true},
		{in: "repository:" + strings.Repeat("a", 256) + ":pull", err: true},
		{in: "repository:" + strings.Repeat("a/", 600) + "a:pull", err: true},
	}
	for _, tc := range tests {
		got, err := ParseScope(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrInvalidScope) {
				t.Errorf("ParseScope(%q) = %+v, %v; want ErrInvalidScope", tc.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseScopes(t *testing.T) {
	got, err := ParseScopes([]string{"repository:a:pull repository:b:push", "repository:a:push", "repository:c:"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{{"repository", "a", []string{"pull", "push"}}, {"repository", "b", []string{"push"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if Scope(got) != "repository:a:pull,push repository:b:push" {
		t.Errorf("Scope = %q", Scope(got))
	}
	if _, err := ParseScopes([]string{"repository:a:pull repository:../b:pull"}); err == nil {
		t.Error("one bad scope among good ones: want error")
	}
}

func TestCovers(t *testing.T) {
	granted := []Access{Repository("a", "pull", "push"), Repository("b", "*"), Catalog}
	tests := []struct {
		want []Access
		ok   bool
	}{
		{nil, true},
		{[]Access{Repository("a", "pull")}, true},
		{[]Access{Repository("a", "pull", "push")}, true},
		{[]Access{Repository("a", "delete")}, false},
		{[]Access{Repository("b", "delete", "pull")}, true},
		{[]Access{Repository("c", "pull")}, false},
		{[]Access{Repository("a", "pull"), Repository("c", "pull")}, false},
		{[]Access{Catalog}, true},
		{[]Access{{Type: "registry", Name: "a", Actions: []string{"pull"}}}, false},
	}
	for _, tc := range tests {
		if got := Covers(granted, tc.want); got != tc.ok {
			t.Errorf("Covers(%v) = %v, want %v", tc.want, got, tc.ok)
		}
	}
}
