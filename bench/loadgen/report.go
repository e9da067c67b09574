package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// figure is one row of the comparison: which result line (label) and which
// value in it, and whether more is better.
type figure struct {
	Key    string
	Title  string
	Labels []string // result labels to look in; several: the largest value wins
	Field  string
	Unit   string
	Higher bool // higher is better
	// Target is the goal for berth, if it set one.
	Target    float64
	HasTarget bool
}

func target(v float64) (float64, bool) { return v, true }

var figures = func() []figure {
	f := []figure{
		{Key: "push_large", Title: "push {layers}×{layer_bytes} image", Labels: []string{"push-large"}, Field: "mibps", Unit: "MiB/s", Higher: true},
		{Key: "push_1g", Title: "push one {layer_bytes} layer", Labels: []string{"push-1g"}, Field: "mibps", Unit: "MiB/s", Higher: true},
		{Key: "push_1g_rss", Title: "server max RSS while pushing {layer_bytes}", Labels: []string{"push-1g"}, Field: "max_rss_mib", Unit: "MiB"},
		{Key: "pull", Title: "pull {bytes} image, {conns} blobs at once", Labels: []string{"pull"}, Field: "mibps", Unit: "MiB/s", Higher: true},
		{Key: "push_small", Title: "{images} small images, {workers} pushers", Labels: []string{"push-small"}, Field: "images_per_s", Unit: "images/s", Higher: true},
		{Key: "push_small_crane", Title: "{images} small images, {workers} crane procs", Labels: []string{"push-small-crane"}, Field: "images_per_s", Unit: "images/s", Higher: true},
		{Key: "head_rps", Title: "manifest HEAD by tag, {conns} conns", Labels: []string{"head"}, Field: "rps", Unit: "req/s", Higher: true},
		{Key: "head_p99", Title: "manifest HEAD p99", Labels: []string{"head"}, Field: "p99_ms", Unit: "ms"},
		{Key: "get_rps", Title: "manifest GET by tag, {conns} conns", Labels: []string{"get"}, Field: "rps", Unit: "req/s", Higher: true},
		{Key: "get_p99", Title: "manifest GET p99", Labels: []string{"get"}, Field: "p99_ms", Unit: "ms"},
		{Key: "get_wrk_rps", Title: "manifest GET (wrk)", Labels: []string{"get-wrk"}, Field: "rps", Unit: "req/s", Higher: true},
		{Key: "get_wrk_p99", Title: "manifest GET p99 (wrk)", Labels: []string{"get-wrk"}, Field: "p99_ms", Unit: "ms"},
		{Key: "catalog_p50", Title: "catalog, {entries} in one page, p50", Labels: []string{"catalog"}, Field: "p50_ms", Unit: "ms"},
		{Key: "catalog_p99", Title: "catalog, {entries} in one page, p99", Labels: []string{"catalog"}, Field: "p99_ms", Unit: "ms"},
		{Key: "catalog_page_p99", Title: "catalog in pages of {page_size}, p99", Labels: []string{"catalog"}, Field: "page_p99_ms", Unit: "ms"},
		{Key: "tags_p50", Title: "tag list, {entries} tags, p50", Labels: []string{"tags"}, Field: "p50_ms", Unit: "ms"},
		{Key: "tags_p99", Title: "tag list, {entries} tags, p99", Labels: []string{"tags"}, Field: "p99_ms", Unit: "ms"},
		{Key: "tags_page_p99", Title: "tag list in pages of {page_size}, p99", Labels: []string{"tags"}, Field: "page_p99_ms", Unit: "ms"},
		{Key: "first_start", Title: "first start on seeded tree: /v2/ answers", Labels: []string{"first-start"}, Field: "seconds", Unit: "s"},
		{Key: "first_start_catalog", Title: "first start on seeded tree: catalog answers", Labels: []string{"first-start"}, Field: "catalog_seconds", Unit: "s"},
		{Key: "startup", Title: "start-up on seeded tree (index exists)", Labels: []string{"startup"}, Field: "seconds", Unit: "s"},
		{Key: "peak_rss", Title: "server peak RSS (VmHWM), whole run", Labels: []string{"rss-push", "rss-seeded"}, Field: "hwm_mib", Unit: "MiB"},
	}
	targets := map[string]float64{
		"push_large": 1800, "push_1g_rss": 64, "push_small": 250,
		"head_rps": 60000, "head_p99": 5, "get_rps": 60000, "get_p99": 5,
		"catalog_p99": 10, "catalog_page_p99": 10, "tags_p99": 10, "tags_page_p99": 10,
		"startup": 2,
	}
	for i := range f {
		if t, ok := targets[f[i].Key]; ok {
			f[i].Target, f[i].HasTarget = target(t)
		}
	}
	return f
}()

// row is a figure's outcome.
type row struct {
	Key          string   `json:"key"`
	Title        string   `json:"title"`
	Unit         string   `json:"unit"`
	HigherBetter bool     `json:"higher_is_better"`
	Berth        *float64 `json:"berth"`
	Distribution *float64 `json:"distribution"`
	// Ratio is berth ÷ distribution.
	Ratio *float64 `json:"ratio,omitempty"`
	// Advantage is how many times better berth is: the ratio, inverted for
	// figures where lower is better. Above 1, berth is ahead.
	Advantage *float64 `json:"advantage,omitempty"`
	Target    *float64 `json:"target,omitempty"`
	TargetMet *bool    `json:"target_met,omitempty"`
	// Runs is how many measurements each value is the median of.
	Runs int `json:"runs"`
}

type metaFlags map[string]string

func (m metaFlags) String() string { return fmt.Sprint(map[string]string(m)) }
func (m metaFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not key=value", s)
	}
	m[k] = v
	return nil
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "results.jsonl", "result lines")
	jsonOut := fs.String("json", "", "write figures, metadata and raw results here")
	svgOut := fs.String("svg", "", "write a bar chart of berth's advantage here")
	mdOut := fs.String("md", "", "write the table as Markdown here")
	title := fs.String("title", "berth vs distribution 2.8.2", "chart title")
	meta := metaFlags{}
	fs.Var(meta, "meta", "key=value to record in the JSON and chart (repeatable)")
	fs.Parse(args)

	results, err := readResults(*in)
	if err != nil {
		return err
	}
	rows := buildRows(results)
	writeText(os.Stdout, rows)
	if *mdOut != "" {
		f, err := os.Create(*mdOut)
		if err != nil {
			return err
		}
		writeMarkdown(f, rows)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{
			"generated": time.Now().UTC().Format(time.RFC3339),
			"meta":      meta,
			"figures":   rows,
			"results":   results,
		}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *svgOut != "" {
		sub := []string{}
		for _, k := range []string{"date", "machine", "mode"} {
			if v := meta[k]; v != "" {
				sub = append(sub, v)
			}
		}
		if err := os.WriteFile(*svgOut, []byte(plotSVG(rows, *title, strings.Join(sub, " · "))), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func readResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, s.Err()
}

// value finds a figure's value for one registry: the median over all
// results with a matching label (compare.sh --rounds repeats every
// measurement); with several labels, the largest of those medians. It also
// returns the last matching result's values, for the title, and how many
// results the median is of.
func value(results []Result, registry string, f figure) (*float64, map[string]any, int) {
	var best *float64
	var values map[string]any
	n := 0
	for _, label := range f.Labels {
		var xs []float64
		var vs map[string]any
		for _, r := range results {
			if r.Registry != registry || r.Label != label {
				continue
			}
			if x, ok := r.Values[f.Field].(float64); ok {
				xs, vs = append(xs, x), r.Values
			}
		}
		if len(xs) == 0 {
			continue
		}
		m := median(xs)
		if best == nil || m > *best {
			best, values, n = &m, vs, len(xs)
		}
	}
	return best, values, n
}

// title fills {key} placeholders from a result's values; byte counts are
// written as MiB or GiB.
func title(t string, values map[string]any) string {
	for k, v := range values {
		ph := "{" + k + "}"
		if !strings.Contains(t, ph) {
			continue
		}
		s := fmt.Sprint(v)
		if x, ok := v.(float64); ok {
			s = strconv.FormatFloat(x, 'f', -1, 64)
			if strings.HasSuffix(k, "bytes") {
				s = bytesString(x)
			}
		}
		t = strings.ReplaceAll(t, ph, s)
	}
	return t
}

func bytesString(b float64) string {
	switch {
	case b >= 1<<30 && math.Mod(b, 1<<30) == 0:
		return fmt.Sprintf("%.0f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func buildRows(results []Result) []row {
	var rows []row
	for _, f := range figures {
		b, bv, bn := value(results, "berth", f)
		d, dv, dn := value(results, "distribution", f)
		if b == nil && d == nil {
			continue
		}
		if bv == nil {
			bv = dv
		}
		r := row{Key: f.Key, Title: title(f.Title, bv), Unit: f.Unit, HigherBetter: f.Higher, Berth: b, Distribution: d,
			Runs: max(bn, dn)}
		if r.Berth != nil && r.Distribution != nil && *r.Distribution > 0 && *r.Berth > 0 {
			ratio := *r.Berth / *r.Distribution
			adv := ratio
			if !f.Higher {
				adv = 1 / ratio
			}
			r.Ratio, r.Advantage = &ratio, &adv
		}
		if f.HasTarget {
			t := f.Target
			r.Target = &t
			if r.Berth != nil {
				met := *r.Berth >= t
				if !f.Higher {
					met = *r.Berth <= t
				}
				r.TargetMet = &met
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func fmtNum(p *float64) string {
	if p == nil {
		return "—"
	}
	v := *p
	switch a := math.Abs(v); {
	case a >= 1000:
		return addCommas(fmt.Sprintf("%.0f", v))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func addCommas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtRatio(p *float64) string {
	if p == nil {
		return "—"
	}
	return times(*p)
}

func times(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.2g×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

func fmtTarget(r row) string {
	if r.Target == nil {
		return ""
	}
	op := "≥"
	if !r.HigherBetter {
		op = "≤"
	}
	s := op + " " + fmtNum(r.Target)
	if r.TargetMet != nil {
		if *r.TargetMet {
			s += " met"
		} else {
			s += " MISSED"
		}
	}
	return s
}

func cells(r row) []string {
	dir := "↑"
	if !r.HigherBetter {
		dir = "↓"
	}
	return []string{r.Title, r.Unit + " " + dir, fmtNum(r.Berth), fmtNum(r.Distribution), fmtRatio(r.Ratio), fmtRatio(r.Advantage), fmtTarget(r)}
}

var header = []string{"figure", "unit", "berth", "distribution", "berth/dist", "berth better by", "target (berth)"}

func writeText(w io.Writer, rows []row) {
	width := make([]int, len(header))
	all := [][]string{header}
	for _, r := range rows {
		all = append(all, cells(r))
	}
	for _, cs := range all {
		for i, c := range cs {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for n, cs := range all {
		var b strings.Builder
		for i, c := range cs {
			pad := width[i] - len([]rune(c))
			if i >= 2 && i <= 5 {
				b.WriteString(strings.Repeat(" ", pad) + c)
			} else {
				b.WriteString(c + strings.Repeat(" ", pad))
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			total := 0
			for _, x := range width {
				total += x + 2
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
	fmt.Fprintln(w, "(↑ higher is better, ↓ lower is better; \"berth better by\" > 1× means berth is ahead)")
}

func writeMarkdown(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|---|")
	for _, r := range rows {
		fmt.Fprintln(w, "| "+strings.Join(cells(r), " | ")+" |")
	}
}

// plotSVG draws berth's advantage per figure as horizontal bars on a log2
// axis centred on 1× (parity): bars to the right, in green, are figures
// where berth is ahead.
func plotSVG(rows []row, title, subtitle string) string {
	var rs []row
	for _, r := range rows {
		if r.Advantage != nil {
			rs = append(rs, r)
		}
	}
	// The axis spans the data, but at most 1/32× to 512×: a figure beyond
	// (berth's index build against distribution's nothing-to-build) is drawn
	// to the edge with its real value written next to it.
	const minExp, maxExp = -5.0, 9.0
	lo, hi := -1.0, 1.0
	for _, r := range rs {
		e := math.Log2(*r.Advantage)
		lo, hi = math.Min(lo, math.Floor(e)), math.Max(hi, math.Ceil(e))
	}
	lo, hi = math.Max(lo, minExp), math.Min(hi, maxExp)
	const (
		labelW = 330
		plotW  = 520
		rowH   = 26
		top    = 70
		right  = 70
	)
	width := labelW + plotW + right
	height := top + rowH*len(rs) + 50
	x := func(e float64) float64 { return labelW + (e-lo)/(hi-lo)*plotW }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", 10, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" fill="#555">%s</text>`+"\n", 10, html.EscapeString(subtitle))
	// grid: one line per power of two
	for e := lo; e <= hi; e++ {
		gx := x(e)
		stroke, w := "#ddd", 1
		if e == 0 {
			stroke, w = "#333", 2
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n", gx, top-8, gx, top+rowH*len(rs), stroke, w)
		lab := fmt.Sprintf("%g×", math.Pow(2, e))
		if e < 0 {
			lab = fmt.Sprintf("1/%g×", math.Pow(2, -e))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", gx, top+rowH*len(rs)+18, lab)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">berth's advantage over distribution 2.8.2 (log scale; right of 1× = berth better)</text>`+"\n",
		x((lo+hi)/2), top+rowH*len(rs)+40)
	for i, r := range rs {
		y := top + i*rowH
		e := math.Min(math.Max(math.Log2(*r.Advantage), lo), hi)
		x0, x1 := x(0), x(e)
		color := "#2e8b57"
		if e < 0 {
			color = "#c0392b"
			x0, x1 = x1, x0
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+17, html.EscapeString(r.Title))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y+5, math.Max(x1-x0, 1), rowH-10, color)
		tx := x(max(e, 0)) + 5 // left bars: the value sits right of 1×
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", tx, y+17, times(*r.Advantage))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
