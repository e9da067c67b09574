// Command loadgen drives registry benchmarks: it pushes and pulls images,
// hammers manifest HEAD/GET, pages through catalog and tag listings, seeds a
// registry:2 storage tree on disk, times server start-up and reads a server's
// memory from /proc. It speaks the Docker Registry HTTP API v2 to any
// registry (berth and distribution alike) with its own small HTTP/1.1 client
// so that the client, which shares the machine's cores with the server, costs
// as little as possible.
//
// Every measuring subcommand prints one JSON result line on stdout (and
// appends it to -out FILE) and a line for humans on stderr. "report" turns the
// collected lines into the comparison table, latest.json and an SVG chart.
//
//	loadgen push-large -url http://127.0.0.1:5000 -layers 4 -size 64MiB
//	loadgen push-small -url U -images 200 -workers 8
//	loadgen pull       -url U -ref bench/large:r0
//	loadgen head|get   -url U -ref bench/large:r0 -conns 64 -duration 10s
//	loadgen catalog    -url U -n 10000 -count 20 -page 100
//	loadgen tags       -url U -repo seed/tags -count 20 -page 100
//	loadgen seed       -root DIR -repos 10000 -tags 10000
//	loadgen ready      -url U -start-ns NANOS
//	loadgen startup    -bin berth -url U -runs 5 -- serve config.yml
//	loadgen rss        -pid PID
//	loadgen wrk        -- wrk ARGS...
//	loadgen port
//	loadgen report     -in results.jsonl -json latest.json -svg ratios.svg
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
)

type command struct {
	name, usage string
	run         func(args []string) error
}

var commands = []command{
	{"push-large", "push one image of large layers; MiB/s over the whole push", cmdPushLarge},
	{"push-small", "push many small images concurrently; images/s", cmdPushSmall},
	{"pull", "download an image's blobs concurrently; MiB/s, and check Range", cmdPull},
	{"head", "manifest HEAD by reference on many keep-alive connections; req/s, latency", func(a []string) error { return cmdLoad("head", a) }},
	{"get", "manifest GET by reference on many keep-alive connections; req/s, latency", func(a []string) error { return cmdLoad("get", a) }},
	{"catalog", "catalog listing latency, whole and paginated", func(a []string) error { return cmdList("catalog", a) }},
	{"tags", "tag listing latency, whole and paginated", func(a []string) error { return cmdList("tags", a) }},
	{"seed", "write a registry:2 storage tree directly on disk", cmdSeed},
	{"ready", "wait until /v2/ answers 200; time since -start-ns", cmdReady},
	{"startup", "start a server N times; time from exec to /v2/ answering 200", cmdStartup},
	{"rss", "a process's peak (VmHWM) and current (VmRSS) resident memory", cmdRSS},
	{"wrk", "run wrk and turn its output into a result line", cmdWrk},
	{"port", "print a free TCP port on 127.0.0.1", cmdPort},
	{"record", "write a result line from key=value pairs (for figures measured by the script)", cmdRecord},
	{"report", "comparison table, latest.json and SVG chart from result lines", cmdReport},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "help" || os.Args[1] == "--help" {
		usage()
		os.Exit(2)
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen COMMAND [flags]  (loadgen COMMAND -h for flags)")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.usage)
	}
}

// common holds the flags every measuring command takes.
type common struct {
	label    string
	registry string
	out      string
}

func newFlags(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&c.label, "label", name, "name of this measurement in the result line")
	fs.StringVar(&c.registry, "registry", "", "which registry was measured (berth, distribution, ...)")
	fs.StringVar(&c.out, "out", "", "also append the JSON result line to this file")
	return fs
}

// Result is one measurement: what was measured, on which registry, and the
// numbers, in a flat map so the report can pick any of them.
type Result struct {
	Label    string         `json:"label"`
	Cmd      string         `json:"cmd"`
	Registry string         `json:"registry,omitempty"`
	Values   map[string]any `json:"values"`
}

// emit prints the result line and the human summary.
func (c *common) emit(cmd string, values map[string]any, human string) error {
	r := Result{Label: c.label, Cmd: cmd, Registry: c.registry, Values: values}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	who := c.registry
	if who == "" {
		who = "-"
	}
	fmt.Fprintf(os.Stderr, "%-13s %-13s %s\n", c.label, who, human)
	if c.out != "" {
		f, err := os.OpenFile(c.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

func cmdRecord(args []string) error {
	var c common
	fs := newFlags("record", &c)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: loadgen record -label L -registry R [-out F] key=value...")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	values := map[string]any{}
	var keys []string
	for _, kv := range fs.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q is not key=value", kv)
		}
		var num float64
		if _, err := fmt.Sscan(v, &num); err == nil {
			values[k] = num
		} else {
			values[k] = v
		}
		keys = append(keys, kv)
	}
	sort.Strings(keys)
	return c.emit("record", values, strings.Join(keys, " "))
}

// parseSize reads sizes like 64MiB, 1GiB, 512KiB, 1000 (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

const mib = 1 << 20

func cmdPort(args []string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}
