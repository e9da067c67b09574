package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// cmdWrk runs wrk (given after --) and turns its report into a result line:
// an independent cross-check of loadgen's own HEAD/GET figures with the
// tool the issue measured with. Pass --latency to wrk for percentiles.
func cmdWrk(args []string) error {
	var c common
	fs := newFlags("wrk", &c)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: loadgen wrk [-label L -registry R -out F] -- wrk --latency ARGS...")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return errors.New("no wrk command given")
	}
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", argv[0], err, out.String())
	}
	v, err := parseWrk(out.String())
	if err != nil {
		return fmt.Errorf("%w in:\n%s", err, out.String())
	}
	human := fmt.Sprintf("wrk: %.0f req/s, p50 %v ms, p99 %v ms", v["rps"], v["p50_ms"], v["p99_ms"])
	if n, ok := v["non2xx"]; ok {
		human += fmt.Sprintf(", %v non-2xx", n)
	}
	return c.emit("wrk", v, human)
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocket  = regexp.MustCompile(`Socket errors:.*`)
	wrkTotal   = regexp.MustCompile(`(\d+) requests in`)
)

func parseWrk(s string) (map[string]any, error) {
	m := wrkRPS.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("no Requests/sec")
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	v := map[string]any{"rps": rps}
	for _, p := range wrkPercent.FindAllStringSubmatch(s, -1) {
		f, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "us":
			f /= 1000
		case "s":
			f *= 1000
		case "m":
			f *= 60000
		}
		v["p"+p[1]+"_ms"] = round3(f)
	}
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		v["non2xx"] = n
	}
	if m := wrkSocket.FindString(s); m != "" {
		v["socket_errors"] = strings.TrimSpace(m)
	}
	if m := wrkTotal.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		v["requests"] = n
	}
	return v, nil
}
