package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Readiness is polled: a fresh connection and GET /v2/ every millisecond
// until the answer is 200, which is what "the server has started" means to a
// client. The poll is cheap next to a server's start-up and its 1 ms period
// bounds the measurement error.
const readyPoll = time.Millisecond

// waitReady polls until /v2/ answers 200, the process exits (exited
// receives) or the timeout passes.
func waitReady(host string, timeout time.Duration, exited <-chan error, pid int) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		c := newConn(host)
		resp, err := c.do(http.MethodGet, "/v2/", nil, nil, false)
		c.close()
		if err == nil && resp.Status == http.StatusOK {
			return nil
		}
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("process %d exited before /v2/ answered", pid)
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("last status %d", resp.Status)
			}
			return fmt.Errorf("/v2/ not ready after %s: %v", timeout, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before /v2/ answered: %v", err)
		case <-tick.C:
		}
	}
}

// alive reports whether pid is running (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func cmdReady(args []string) error {
	var c common
	fs := newFlags("ready", &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	startNS := fs.Int64("start-ns", 0, "when the server was started, in Unix nanoseconds (date +%s%N); default: now")
	pid := fs.Int("pid", 0, "fail as soon as this process is gone")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	catalog := fs.Bool("catalog", false, "then also time the first catalog answer (berth answers it once its index is built)")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	start := time.Now()
	if *startNS > 0 {
		start = time.Unix(0, *startNS)
	}
	if err := waitReady(host, *timeout, nil, *pid); err != nil {
		return err
	}
	d := time.Since(start)
	values := map[string]any{"seconds": round3(d.Seconds())}
	text := fmt.Sprintf("/v2/ answered 200 after %.3f s", d.Seconds())
	if *catalog {
		cn := newConn(host)
		defer cn.close()
		resp, err := cn.do(http.MethodGet, "/v2/_catalog?n=1", nil, nil, true)
		if err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		if err := expect(resp, http.StatusOK); err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		dc := time.Since(start)
		values["catalog_seconds"] = round3(dc.Seconds())
		text += fmt.Sprintf(", the catalog after %.3f s", dc.Seconds())
	}
	return c.emit("ready", values, text)
}

func cmdStartup(args []string) error {
	var c common
	fs := newFlags("startup", &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "the URL the server will listen on")
	bin := fs.String("bin", "", "server binary")
	config := fs.String("config", "", "configuration file; shorthand for the arguments: serve CONFIG")
	runs := fs.Int("runs", 5, "starts; the figure is the median")
	logPath := fs.String("log", "", "append the server's output here (default: discard)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up on one start after this long")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: loadgen startup -bin BIN -url U [flags] -- ARGS... (or -config C for ARGS = serve C)")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	srvArgs := fs.Args()
	if *config != "" {
		srvArgs = append([]string{"serve", *config}, srvArgs...)
	}
	if *bin == "" || len(srvArgs) == 0 {
		fs.Usage()
		return errors.New("need -bin and the server's arguments")
	}
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	var times []float64
	for range *runs {
		d, err := startOnce(host, *bin, srvArgs, *logPath, *timeout)
		if err != nil {
			return err
		}
		times = append(times, d.Seconds())
	}
	med := median(times)
	return c.emit("startup", map[string]any{"seconds": round3(med), "runs": roundAll(times)},
		fmt.Sprintf("%.3f s from exec to /v2/ 200 (median of %d: %v)", med, len(times), roundAll(times)))
}

// startOnce starts the server, times it to readiness, then stops it with
// SIGTERM (a clean shutdown, so berth's index stays valid) and waits.
func startOnce(host, bin string, args []string, logPath string, timeout time.Duration) (time.Duration, error) {
	cmd := exec.Command(bin, args...)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitReady(host, timeout, exited, 0); err != nil {
		cmd.Process.Kill()
		return 0, err
	}
	d := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("%s did not stop within a minute of SIGTERM", bin)
	}
	return d, nil
}

// procStatus reads a field in kB from /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func cmdRSS(args []string) error {
	var c common
	fs := newFlags("rss", &c)
	pid := fs.Int("pid", 0, "process id")
	fs.Parse(args)
	hwm, err := procStatus(*pid, "VmHWM")
	if err != nil {
		return err
	}
	rss, err := procStatus(*pid, "VmRSS")
	if err != nil {
		return err
	}
	return c.emit("rss", map[string]any{"hwm_mib": round3(float64(hwm) / mib), "rss_mib": round3(float64(rss) / mib)},
		fmt.Sprintf("peak RSS (VmHWM) %.1f MiB, now %.1f MiB", float64(hwm)/mib, float64(rss)/mib))
}

// rssWatch samples a process's VmRSS periodically and keeps the maximum.
// VmHWM cannot be used for a phase of a run: it covers the whole process
// life.
type rssWatch struct {
	done    chan struct{}
	wg      sync.WaitGroup
	max     int64
	samples int
}

func watchRSS(pid int, every time.Duration) (*rssWatch, error) {
	first, err := procStatus(pid, "VmRSS")
	if err != nil {
		return nil, err
	}
	w := &rssWatch{done: make(chan struct{}), max: first, samples: 1}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
			}
			if v, err := procStatus(pid, "VmRSS"); err == nil {
				w.max = max(w.max, v)
				w.samples++
			}
		}
	}()
	return w, nil
}

func (w *rssWatch) stop() (maxRSS int64, samples int) {
	close(w.done)
	w.wg.Wait()
	return w.max, w.samples
}
