package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The client is a minimal HTTP/1.1 client over one keep-alive connection. It
// exists because the load generator shares two cores with the server under
// test: net/http's client costs several times more CPU per request (and
// copies upload bodies in 32 KiB pieces), which would cap the figures at
// what the client can do rather than what the server can. Request bodies are
// written straight to the socket in large slices; responses are parsed just
// enough (status, headers, Content-Length or chunked body).

// body is a request body that can be written again from the start, so a
// request on a stale keep-alive connection can be retried.
type body interface {
	Len() int64
	WriteTo(w io.Writer) (int64, error)
}

type byteBody []byte

func (b byteBody) Len() int64 { return int64(len(b)) }

func (b byteBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

type conn struct {
	host string // host:port, also the Host header
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	buf  []byte // scratch for discarding response bodies
	used bool   // a request already went over nc
}

func newConn(host string) *conn {
	return &conn{host: host, buf: make([]byte, 256<<10)}
}

func (c *conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.host, 10*time.Second)
	if err != nil {
		return err
	}
	c.nc, c.used = nc, false
	c.br = bufio.NewReaderSize(nc, 64<<10)
	c.bw = bufio.NewWriterSize(nc, 64<<10)
	return nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte // only when asked for
	Len    int64  // body bytes received
}

// do sends one request and reads the response. b may be nil. With keepBody
// the response body is returned, otherwise it is read and dropped.
func (c *conn) do(method, target string, hdr []string, b body, keepBody bool) (*response, error) {
	for attempt := 0; ; attempt++ {
		reused := c.nc != nil && c.used
		resp, err := c.try(method, target, hdr, b, keepBody)
		if err == nil {
			return resp, nil
		}
		c.close()
		// A keep-alive connection the server closed while idle fails on
		// first use; one retry on a fresh connection covers that.
		if !reused || attempt > 0 {
			return nil, fmt.Errorf("%s %s: %w", method, target, err)
		}
	}
}

func (c *conn) try(method, target string, hdr []string, b body, keepBody bool) (*response, error) {
	if c.nc == nil {
		if err := c.dial(); err != nil {
			return nil, err
		}
	}
	c.used = true
	// Generous: a 1 GiB body on a slow machine, but never forever.
	c.nc.SetDeadline(time.Now().Add(10 * time.Minute))
	w := c.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(c.host)
	w.WriteString("\r\nUser-Agent: berth-loadgen\r\n")
	for _, h := range hdr {
		w.WriteString(h)
		w.WriteString("\r\n")
	}
	var n int64
	if b != nil {
		n = b.Len()
	}
	if b != nil || method == http.MethodPut || method == http.MethodPost || method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(n, 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if b != nil && n <= 64<<10 {
		if _, err := b.WriteTo(w); err != nil {
			return nil, err
		}
		b = nil
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if b != nil {
		// Large bodies go to the socket directly, in the body's own slices.
		if _, err := b.WriteTo(c.nc); err != nil {
			return nil, err
		}
	}
	resp := &response{Header: http.Header{}}
	var sink *[]byte
	if keepBody {
		sink = &resp.Body
	}
	status, got, closeConn, err := readResponse(c.br, method == http.MethodHead, resp.Header, sink, c.buf)
	if err != nil {
		return nil, err
	}
	resp.Status, resp.Len = status, got
	if closeConn {
		c.close()
	}
	return resp, nil
}

// roundTrip sends a pre-built request (the whole request, headers and all)
// and reads the response without keeping anything: the load generator's
// fast path.
func (c *conn) roundTrip(req []byte, head bool) (int, error) {
	for attempt := 0; ; attempt++ {
		reused := c.nc != nil && c.used
		status, err := c.tryRoundTrip(req, head)
		if err == nil {
			return status, nil
		}
		c.close()
		if !reused || attempt > 0 {
			return 0, err
		}
	}
}

func (c *conn) tryRoundTrip(req []byte, head bool) (int, error) {
	if c.nc == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	c.used = true
	if _, err := c.nc.Write(req); err != nil {
		return 0, err
	}
	status, _, closeConn, err := readResponse(c.br, head, nil, nil, c.buf)
	if err != nil {
		return 0, err
	}
	if closeConn {
		c.close()
	}
	return status, nil
}

var (
	hContentLength    = []byte("content-length")
	hTransferEncoding = []byte("transfer-encoding")
	hConnection       = []byte("connection")
)

// readResponse reads one response. Headers go into hdr when it is not nil;
// the body into *sink when sink is not nil, else it is discarded through buf.
// It returns the status, the body length and whether the server will close
// the connection.
func readResponse(br *bufio.Reader, head bool, hdr http.Header, sink *[]byte, buf []byte) (status int, n int64, closeConn bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, false, fmt.Errorf("malformed status line %q", line)
	}
	closeConn = line[7] == '0' // HTTP/1.0
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, 0, false, fmt.Errorf("malformed header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, hContentLength):
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return 0, 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, hTransferEncoding):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, hConnection):
			closeConn = bytes.EqualFold(v, []byte("close"))
		}
		if hdr != nil {
			key := textproto.CanonicalMIMEHeaderKey(string(k))
			hdr[key] = append(hdr[key], string(v))
		}
	}
	if head || status/100 == 1 || status == http.StatusNoContent || status == http.StatusNotModified {
		return status, 0, closeConn, nil
	}
	var r io.Reader
	switch {
	case chunked:
		r = httputil.NewChunkedReader(br)
	case length >= 0:
		r = io.LimitReader(br, length)
	default:
		r, closeConn = br, true // until the server closes
	}
	if sink != nil {
		*sink, err = io.ReadAll(r)
		n = int64(len(*sink))
	} else {
		n, err = drain(r, buf)
	}
	if err != nil {
		return 0, n, false, err
	}
	if length >= 0 && n != length {
		return 0, n, false, io.ErrUnexpectedEOF
	}
	if chunked { // trailer section, ending in an empty line
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, n, false, err
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
	}
	return status, n, closeConn, nil
}

// drain reads r to the end through buf, in buf-sized reads: bufio.Reader
// hands reads at least its own size straight to the socket.
func drain(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// hostOf turns -url (http://host:port) into host:port.
func hostOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("-url must be http://host:port, not %q", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("-url must have no path: %q", raw)
	}
	return u.Host, nil
}

// targetOf turns a Location or Link URL (absolute or relative) into the
// request target (path and query) to send on our connection.
func targetOf(loc string) (string, error) {
	if loc == "" {
		return "", errors.New("no Location in response")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	return u.RequestURI(), nil
}

// withQuery appends key=value to a request target, keeping what the server
// put there (distribution's signed _state) byte for byte.
func withQuery(target, key, value string) string {
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	return target + sep + key + "=" + url.QueryEscape(value)
}

// expect turns an unexpected status into an error carrying the body.
func expect(resp *response, want ...int) error {
	for _, w := range want {
		if resp.Status == w {
			return nil
		}
	}
	msg := strings.TrimSpace(string(resp.Body))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return fmt.Errorf("status %d, want %v: %s", resp.Status, want, msg)
}
