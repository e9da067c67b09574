package api

import "testing"

func TestParseRange(t *testing.T) {
	const size = 10
	for _, tc := range []struct {
		spec          string
		size          int64
		start, length int64
		ok            bool
	}{
		{"bytes=0-0", size, 0, 1, true},
		{"bytes=0-9", size, 0, 10, true},
		{"bytes=5-", size, 5, 5, true},
		{"bytes=9-", size, 9, 1, true},
		{"bytes=-3", size, 7, 3, true},
		{"bytes=-10", size, 0, 10, true},
		{"bytes=-100", size, 0, 10, true}, // suffix longer than the blob: all of it
		{"bytes=2-4", size, 2, 3, true},
		{"bytes=8-100", size, 8, 2, true}, // last byte past the end is clamped
		{"bytes= 2-4", size, 2, 3, true},

		{"bytes=100-", size, 0, 0, false},
		{"bytes=10-", size, 0, 0, false},
		{"bytes=10-20", size, 0, 0, false},
		{"bytes=-0", size, 0, 0, false},
		{"bytes=5-2", size, 0, 0, false},
		{"bytes=-", size, 0, 0, false},
		{"bytes=", size, 0, 0, false},
		{"bytes=a-b", size, 0, 0, false},
		{"bytes=1-a", size, 0, 0, false},
		{"bytes=-1-2", size, 0, 0, false},
		{"bytes=0-1,3-4", size, 0, 0, false}, // multiple ranges are not served
		{"bytes=--1", size, 0, 0, false},
		{"bytes=5", size, 0, 0, false},
		{"items=0-1", size, 0, 0, false},
		{"0-1", size, 0, 0, false},
		{"", size, 0, 0, false},
		{"bytes=99999999999999999999-", size, 0, 0, false},
		{"bytes=-99999999999999999999", size, 0, 0, false},

		// An empty blob has no satisfiable range.
		{"bytes=0-", 0, 0, 0, false},
		{"bytes=0-0", 0, 0, 0, false},
		{"bytes=-1", 0, 0, 0, false},
	} {
		start, length, ok := parseRange(tc.spec, tc.size)
		if ok != tc.ok || (ok && (start != tc.start || length != tc.length)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v",
				tc.spec, tc.size, start, length, ok, tc.start, tc.length, tc.ok)
		}
		if ok && (start < 0 || length <= 0 || start+length > tc.size) {
			t.Errorf("parseRange(%q, %d) = %d, %d: outside the blob", tc.spec, tc.size, start, length)
		}
	}
}
