package objstore

import (
	"reflect"
	"testing"
	"time"
)

func TestAncestorCache(t *testing.T) {
	c := NewAncestorCache(time.Hour, 3)
	if c.Has("/a") {
		t.Fatal("empty cache has /a")
	}
	c.Add("/a")
	c.Add("/a/b")
	if !c.Has("/a") || !c.Has("/a/b") {
		t.Fatal("added paths missing")
	}
	c.Forget("/a")
	if c.Has("/a") || !c.Has("/a/b") {
		t.Fatal("Forget dropped the wrong path")
	}
	c.Add("/x")
	c.Add("/y") // 3 entries: full
	c.Add("/z") // clears, then adds
	for _, p := range []string{"/a/b", "/x", "/y"} {
		if c.Has(p) {
			t.Errorf("%s survived the cache filling up", p)
		}
	}
	if !c.Has("/z") {
		t.Error("the path added to a full cache is missing")
	}
}

func TestAncestorCacheTTL(t *testing.T) {
	c := NewAncestorCache(time.Millisecond, 10)
	c.Add("/a")
	time.Sleep(5 * time.Millisecond)
	if c.Has("/a") {
		t.Fatal("expired entry still held")
	}
	if len(c.m) != 0 {
		t.Errorf("expired entry not deleted: %v", c.m)
	}
}

func TestUncached(t *testing.T) {
	c := NewAncestorCache(time.Hour, 10)
	c.Add("/a/b")
	cases := []struct {
		p    string
		want []string
	}{
		{"/f", nil},
		{"/a/f", []string{"/a"}},
		{"/a/b/c/f", []string{"/a/b/c", "/a"}},
	}
	for _, tc := range cases {
		if got := c.Uncached(tc.p); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Uncached(%q) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestBufferPool(t *testing.T) {
	bp := NewBufferPool(1 << 10)
	a, b := bp.Get(), bp.Get()
	for _, buf := range [][]byte{a, b} {
		if len(buf) != 0 || cap(buf) != 1<<10 {
			t.Fatalf("buffer len %d cap %d, want 0 and %d", len(buf), cap(buf), 1<<10)
		}
	}
	if n := bp.Held(); n != 2 {
		t.Errorf("Held() = %d after two Gets, want 2", n)
	}
	a = append(a, "some bytes"...)
	bp.Put(a)
	bp.Put(b)
	if n := bp.Held(); n != 0 {
		t.Errorf("Held() = %d after the buffers came back, want 0", n)
	}
	if c := bp.Get(); len(c) != 0 || cap(c) != 1<<10 {
		t.Errorf("reused buffer len %d cap %d, want 0 and %d", len(c), cap(c), 1<<10)
	}
}
