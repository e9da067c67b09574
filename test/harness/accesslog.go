package harness

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Request is one access-log line berth wrote (msg=request). The query
// string is never logged, only the path.
type Request struct {
	Seq    int // position among the access lines of the log, from 0
	Method string
	Path   string
	Status int
	Bytes  int64
	Attrs  map[string]string // every key=value of the line
}

func (r Request) String() string {
	return fmt.Sprintf("%s %s -> %d (%d bytes)", r.Method, r.Path, r.Status, r.Bytes)
}

// Requests parses every access line in berth's log so far (across
// restarts). A line is complete once berth has answered the request; a
// client may see the response a moment before the line is written, so to
// look at a client's last request use WaitRequest first.
func (b *Berth) Requests(t testing.TB) []Request {
	t.Helper()
	f, err := os.Open(b.LogPath)
	if err != nil {
		t.Fatalf("reading %s's log: %v", b.Name, err)
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		attrs := ParseLogLine(sc.Text())
		if attrs["msg"] != "request" || attrs["method"] == "" {
			continue
		}
		status, _ := strconv.Atoi(attrs["status"])
		n, _ := strconv.ParseInt(attrs["bytes"], 10, 64)
		out = append(out, Request{
			Seq:    len(out),
			Method: attrs["method"],
			Path:   attrs["path"],
			Status: status,
			Bytes:  n,
			Attrs:  attrs,
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s's log: %v", b.Name, err)
	}
	return out
}

// RequestsSince returns the access lines after the first mark of them, where
// mark is an earlier len(b.Requests(t)).
func (b *Berth) RequestsSince(t testing.TB, mark int) []Request {
	t.Helper()
	all := b.Requests(t)
	if mark > len(all) {
		mark = len(all)
	}
	return all[mark:]
}

// WaitRequest waits until an access line after mark satisfies match and
// returns it.
func (b *Berth) WaitRequest(t testing.TB, mark int, timeout time.Duration, what string, match func(Request) bool) Request {
	t.Helper()
	var found Request
	WaitFor(t, timeout, what+" in "+b.Name+"'s access log", func() (bool, string) {
		reqs := b.RequestsSince(t, mark)
		for _, r := range reqs {
			if match(r) {
				found = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d access lines since mark", len(reqs))
	})
	return found
}

// ParseLogLine splits one line of slog's text format (key=value pairs,
// values quoted Go-style when they contain spaces, quotes or '=') into a
// map. Malformed trailing input is ignored.
func ParseLogLine(line string) map[string]string {
	attrs := map[string]string{}
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return attrs
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return attrs
		}
		key := s[:eq]
		if strings.ContainsAny(key, " \"") {
			return attrs
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return attrs
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val = s[:end]
			s = s[end:]
		}
		attrs[key] = val
	}
}
