package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The decoder turns the YAML tree (file plus environment) into a Config.
// It is strict where yaml.Unmarshal is lax: an unknown key or a value of the
// wrong kind is an error naming the dotted key path and where it was set.
// Scalars are read the way registry:2 (yaml.v2) reads them: any scalar is
// accepted for a string, YAML 1.1 booleans (yes/no/on/off) for a bool, and a
// duration is a Go duration string or an integer number of nanoseconds.

type pair struct{ k, v *yaml.Node }

// pairs lists the key/value pairs of a mapping with merge keys ("<<")
// expanded; explicit keys override merged ones.
func pairs(n *yaml.Node) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			v = resolveAlias(v)
			switch v.Kind {
			case yaml.MappingNode:
				merged = append(merged, pairs(v)...)
			case yaml.SequenceNode:
				for _, e := range v.Content {
					if e = resolveAlias(e); e.Kind == yaml.MappingNode {
						merged = append(merged, pairs(e)...)
					}
				}
			}
			continue
		}
		own = append(own, pair{k, v})
	}
	if len(merged) == 0 {
		return own
	}
	have := map[string]bool{}
	for _, p := range own {
		have[p.k.Value] = true
	}
	out := own
	for _, p := range merged {
		if !have[p.k.Value] {
			have[p.k.Value] = true
			out = append(out, p)
		}
	}
	return out
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (l *loader) typeErr(n *yaml.Node, path, want string) {
	l.fail(l.origin(n).err(path, "%s: expected %s, got %s", path, want, kindName(n)))
}

func (l *loader) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	t := v.Type()

	switch {
	case t == durationType:
		l.decodeDuration(n, v, path)
		return
	case t == sizeType:
		l.decodeSize(n, v, path)
		return
	}

	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			switch t.Elem().Kind() {
			case reflect.Struct, reflect.Map:
				// "inmemory:" with no value: the section is present.
				v.Set(reflect.New(t.Elem()))
			default:
				v.Set(reflect.Zero(t))
			}
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		l.decode(n, v.Elem(), path)

	case reflect.Struct:
		if isNull(n) {
			return
		}
		if n.Kind == yaml.ScalarNode && (t == storageType || t == authType) {
			// "storage: inmemory" / "auth: htpasswd": a name alone selects a
			// driver or provider with no parameters.
			name := n.Value
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
			m.Content = []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Line: n.Line, Column: n.Column},
				{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column},
			}
			if env, ok := l.envNodes[n]; ok {
				l.markEnv(m, env)
			}
			n = m
		}
		if n.Kind != yaml.MappingNode {
			what := "a mapping"
			if path == "" {
				what = "a mapping of configuration keys"
			}
			l.typeErr(n, path, what)
			return
		}
		seen := map[string]*yaml.Node{}
		for _, p := range pairs(n) {
			k := p.k
			if k.Kind != yaml.ScalarNode {
				l.fail(l.origin(k).err(path, "%s: keys must be plain names, got %s", orTop(path), kindName(k)))
				continue
			}
			f, ok := fieldByKey(t, k.Value)
			cpath := joinPath(path, k.Value)
			if !ok {
				l.fail(l.origin(k).err(cpath, "unknown key %q%s", cpath, suggest(t, k.Value, path)))
				continue
			}
			if prev, dup := seen[k.Value]; dup {
				l.warn(l.origin(k), "duplicate key %q (first at line %d); the later value is used, as registry:2 does", cpath, prev.Line)
			}
			seen[k.Value] = k
			l.seen(cpath, l.origin(k))
			l.decode(p.v, v.Field(f.index), cpath)
		}

	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			l.typeErr(n, path, "a mapping")
			return
		}
		for _, p := range pairs(n) {
			if p.k.Kind != yaml.ScalarNode {
				l.fail(l.origin(p.k).err(path, "%s: keys must be plain names, got %s", path, kindName(p.k)))
				continue
			}
			cpath := joinPath(path, p.k.Value)
			l.seen(cpath, l.origin(p.k))
			ev := reflect.New(t.Elem()).Elem()
			l.decode(p.v, ev, cpath)
			v.SetMapIndex(reflect.ValueOf(p.k.Value).Convert(t.Key()), ev)
		}

	case reflect.Slice:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		items := n.Content
		if n.Kind == yaml.ScalarNode && t.Elem().Kind() == reflect.String {
			items = []*yaml.Node{n} // a single value for a list of strings
		} else if n.Kind != yaml.SequenceNode {
			l.typeErr(n, path, "a list")
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			l.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)

	case reflect.Interface:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			l.fail(l.origin(n).err(path, "%s: %v", path, err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}

	case reflect.String:
		if isNull(n) {
			v.SetString("")
			return
		}
		if n.Kind != yaml.ScalarNode {
			l.typeErr(n, path, "a string")
			return
		}
		v.SetString(n.Value)

	case reflect.Bool:
		if isNull(n) {
			v.SetBool(false)
			return
		}
		b, ok := parseBool(n)
		if !ok {
			l.typeErr(n, path, "a boolean (true or false)")
			return
		}
		v.SetBool(b)

	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isNull(n) {
			v.SetInt(0)
			return
		}
		i, ok := parseInt(n)
		if !ok || v.OverflowInt(i) {
			l.typeErr(n, path, "an integer")
			return
		}
		v.SetInt(i)

	case reflect.Float32, reflect.Float64:
		if isNull(n) {
			v.SetFloat(0)
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			l.typeErr(n, path, "a number")
			return
		}
		v.SetFloat(f)

	default:
		panic(fmt.Sprintf("config: unsupported field type %s at %s", t, path))
	}
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(n.Value)) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

func parseInt(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	s := strings.ReplaceAll(strings.TrimSpace(n.Value), "_", "")
	if i, err := strconv.ParseInt(s, 0, 64); err == nil {
		return i, true
	}
	if strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0O") {
		if i, err := strconv.ParseInt(s[2:], 8, 64); err == nil {
			return i, true
		}
	}
	// 1e6 and 5.0 are integers too, if they are whole.
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return int64(f), true
	}
	return 0, false
}

func (l *loader) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetInt(0)
		return
	}
	if n.Kind != yaml.ScalarNode {
		l.typeErr(n, path, `a duration such as "10s"`)
		return
	}
	s := strings.TrimSpace(n.Value)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		// registry:2 reads a bare integer as nanoseconds.
		if i != 0 {
			l.warn(l.origin(n), "%s: %d has no unit and is read as %v, as registry:2 does; write for example \"%ds\" for seconds", path, i, time.Duration(i), i)
		}
		v.SetInt(i)
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.typeErr(n, path, `a duration such as "10s", "5m" or "168h"`)
		return
	}
	v.SetInt(int64(d))
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseSize parses a byte count: an integer, or a number with a unit
// (B, KiB, MiB, GiB, KB, MB, GB; K, M, G mean KiB, MiB, GiB).
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if i, err := strconv.ParseInt(t, 10, 64); err == nil {
		return Size(i), nil
	}
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok && num != "" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 || f*float64(u.mult) > math.MaxInt64/2 {
				break
			}
			return Size(f * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("invalid size %q: want bytes or a number with a unit such as 4MiB", s)
}

func (l *loader) decodeSize(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetInt(0)
		return
	}
	if n.Kind != yaml.ScalarNode {
		l.typeErr(n, path, `a size such as 4194304 or "4MiB"`)
		return
	}
	s, err := ParseSize(n.Value)
	if err != nil {
		l.typeErr(n, path, `a size such as 4194304 or "4MiB"`)
		return
	}
	v.SetInt(int64(s))
}

// suggest returns ` (did you mean "path.key"?)` for the known key of struct
// type t closest to the unknown key k, or "".
func suggest(t reflect.Type, k, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	best, bestD := "", 3
	var keys []string
	for _, f := range fieldsOf(t) {
		keys = append(keys, f.key)
	}
	sort.Strings(keys)
	lk := strings.ToLower(k)
	for _, key := range keys {
		if strings.EqualFold(key, k) {
			return fmt.Sprintf(" (keys are lower-case: did you mean %q?)", joinPath(path, key))
		}
		d := editDistance(lk, key)
		if d < bestD && d <= len(key)/3+1 {
			best, bestD = key, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", joinPath(path, best))
}

// editDistance is the optimal string alignment distance (Levenshtein plus
// transpositions).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
