package harness

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// Response is an HTTP response read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// httpClient bounds every request: a registry that stops answering fails
// the test instead of hanging it.
var httpClient = &http.Client{Timeout: 2 * time.Minute}

// Do sends one request (body may be nil) and returns the response read
// whole; a transport error fails the test.
func Do(t testing.TB, method, url string, header map[string]string, body []byte) Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// ErrorCode is the code of the first error in a spec error body, or "".
func (r Response) ErrorCode() string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.Body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}
