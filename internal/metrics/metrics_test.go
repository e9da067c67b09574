package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestRequestIsRecordedUnderRegistry2Names(t *testing.T) {
	m := New("v9.9.9")
	done := m.Request("manifest", http.MethodPut)
	if text := scrape(t, m); !strings.Contains(text, `registry_http_in_flight_requests{handler="manifest"} 1`) {
		t.Errorf("in flight not counted while the request runs:\n%s", text)
	}
	done(201, 512, 0, 30*time.Millisecond)
	m.Request("manifest", "PROPFIND")(405, 0, 70, time.Millisecond)
	building := 1.0
	m.Gauge("berth_index_building", "help", func() float64 { return building })

	text := scrape(t, m)
	for _, want := range []string{
		`registry_http_in_flight_requests{handler="manifest"} 0`,
		`registry_http_requests_total{code="201",handler="manifest",method="PUT"} 1`,
		`registry_http_requests_total{code="405",handler="manifest",method="other"} 1`,
		`registry_http_request_duration_seconds_bucket{handler="manifest",method="PUT",le="0.025"} 0`,
		`registry_http_request_duration_seconds_bucket{handler="manifest",method="PUT",le="0.05"} 1`,
		`registry_http_request_size_bytes_sum{handler="manifest"} 512`,
		`registry_http_request_size_bytes_bucket{handler="manifest",le="1024"} 2`,
		`registry_http_response_size_bytes_sum{handler="manifest"} 70`,
		`berth_build_info{version="v9.9.9"} 1`,
		`berth_index_building 1`,
		"\ngo_goroutines ",
		"\nprocess_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "PROPFIND") {
		t.Error("an unknown method became a label value")
	}
}

func TestNotificationQueues(t *testing.T) {
	m := New("test")
	queues := []Queue{{Endpoint: "ci", Pending: 3, Delivered: 10, Failures: 2, Dropped: 7}}
	m.NotificationQueues(func() []Queue { return queues })
	text := scrape(t, m)
	for _, want := range []string{
		`berth_notifications_pending{endpoint="ci"} 3`,
		`berth_notifications_delivered_total{endpoint="ci"} 10`,
		`berth_notifications_failures_total{endpoint="ci"} 2`,
		`berth_notifications_dropped_total{endpoint="ci"} 7`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	queues[0].Pending = 0 // read again at every scrape
	if text := scrape(t, m); !strings.Contains(text, `berth_notifications_pending{endpoint="ci"} 0`) {
		t.Errorf("pending not re-read:\n%s", text)
	}
}
