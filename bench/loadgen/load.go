package main

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// cmdLoad runs manifest HEAD or GET on many keep-alive connections, one
// goroutine per connection sending the next request when the previous
// answer is in (a closed loop, as wrk does). Latency is from writing the
// request to reading the last byte of the response.
func cmdLoad(kind string, args []string) error {
	var c common
	fs := newFlags(kind, &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	ref := fs.String("ref", "bench/large:r0", "manifest reference (repo:tag or repo@digest)")
	conns := fs.Int("conns", 64, "connections")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	warmup := fs.Duration("warmup", time.Second, "load before measuring (not counted)")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	repo, tag, err := splitRef(*ref)
	if err != nil {
		return err
	}
	method := http.MethodGet
	if kind == "head" {
		method = http.MethodHead
	}
	target := "/v2/" + repo + "/manifests/" + tag
	req := []byte(method + " " + target + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: berth-loadgen\r\n" + acceptManifests + "\r\n\r\n")

	// One request first: a wrong reference should fail loudly, not produce
	// a fast stream of 404s.
	probe := newConn(host)
	resp, err := probe.do(method, target, []string{acceptManifests}, nil, true)
	probe.close()
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return fmt.Errorf("%s %s: %w", method, target, err)
	}

	type worker struct {
		h      hist
		ok     uint64
		failed uint64
		other  map[int]uint64
		err    error
	}
	ws := make([]*worker, *conns)
	cs := make([]*conn, *conns)
	for i := range cs {
		cs[i] = newConn(host)
		if err := cs[i].dial(); err != nil {
			return err
		}
		defer cs[i].close()
		ws[i] = &worker{other: map[int]uint64{}}
	}
	begin := make(chan struct{})
	var wg sync.WaitGroup
	var measureFrom, measureTo time.Time
	head := method == http.MethodHead
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, cn := ws[i], cs[i]
			<-begin
			t0 := time.Now()
			for {
				status, err := cn.roundTrip(req, head)
				t1 := time.Now()
				if t1.After(measureTo) {
					return
				}
				if t1.After(measureFrom) {
					switch {
					case err != nil:
						w.failed++
						if w.err == nil {
							w.err = err
						}
					case status == http.StatusOK:
						w.ok++
						w.h.record(t1.Sub(t0))
					default:
						w.other[status]++
					}
				}
				if err != nil {
					// A broken connection is redialled by the next
					// roundTrip; don't spin on a dead server.
					if w.failed > 1000 {
						return
					}
				}
				t0 = t1
			}
		}()
	}
	measureFrom = time.Now().Add(*warmup)
	measureTo = measureFrom.Add(*duration)
	for _, cn := range cs {
		// A server that stops answering must not hang the run.
		cn.nc.SetDeadline(measureTo.Add(30 * time.Second))
	}
	close(begin)
	wg.Wait()

	var total hist
	var ok, failed uint64
	others := map[int]uint64{}
	var firstErr error
	for _, w := range ws {
		total.merge(&w.h)
		ok += w.ok
		failed += w.failed
		for s, n := range w.other {
			others[s] += n
		}
		if firstErr == nil {
			firstErr = w.err
		}
	}
	rps := float64(ok) / duration.Seconds()
	v := map[string]any{
		"rps":      round3(rps),
		"requests": ok,
		"errors":   failed,
		"conns":    *conns,
		"seconds":  duration.Seconds(),
	}
	latencyValues(v, "", &total)
	if len(others) > 0 {
		m := map[string]uint64{}
		for s, n := range others {
			m[fmt.Sprint(s)] = n
		}
		v["other_status"] = m
	}
	human := fmt.Sprintf("%.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms (%d conns, %s)",
		rps, ms(total.quantile(0.5)), ms(total.quantile(0.99)), ms(time.Duration(total.max)), *conns, *duration)
	if failed > 0 || len(others) > 0 {
		human += fmt.Sprintf("; %d errors (first: %v), other statuses %v", failed, firstErr, others)
	}
	return c.emit(kind, v, human)
}
