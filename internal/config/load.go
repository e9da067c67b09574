package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable that overrides configuration.
const EnvPrefix = "REGISTRY_"

// EnvConfigPath names the environment variable registry:2 reads its
// configuration file path from. It is not a configuration key; Load skips
// it silently. Use PathFromEnv to honour it.
const EnvConfigPath = "REGISTRY_CONFIGURATION_PATH"

// PathFromEnv returns the value of REGISTRY_CONFIGURATION_PATH in environ,
// or "" if it is not set.
func PathFromEnv(environ []string) string {
	p := ""
	for _, kv := range environ {
		if name, val, ok := strings.Cut(kv, "="); ok && name == EnvConfigPath {
			p = val
		}
	}
	return p
}

// Error is one configuration problem. Load returns one Error, or several
// joined with errors.Join; errors.As finds the first.
type Error struct {
	File string // configuration file, when the problem is in the file
	Line int    // line in File (1-based), or 0
	Env  string // environment variable, when the value came from one
	Path string // dotted key path, e.g. "auth.htpasswd.path"; may be ""
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString(e.Env)
		b.WriteString(": ")
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// origin says where a YAML node came from: a line of the file or an
// environment variable.
type origin struct {
	file string
	line int
	env  string
}

func (o origin) String() string {
	if o.env != "" {
		return o.env
	}
	if o.line > 0 {
		return fmt.Sprintf("%s:%d", o.file, o.line)
	}
	return o.file
}

func (o origin) err(path, format string, args ...any) *Error {
	return &Error{File: o.file, Line: o.line, Env: o.env, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// loader carries the state of one Load.
type loader struct {
	file          string
	envNodes      map[*yaml.Node]string // nodes that came from the environment
	errs          []*Error
	warnings      []string
	unimplemented []string
	sources       map[string]origin // dotted path -> where it was set
	order         []string          // paths in the order they were seen
}

func (l *loader) origin(n *yaml.Node) origin {
	if env, ok := l.envNodes[n]; ok {
		return origin{env: env}
	}
	if l.file == "" {
		return origin{}
	}
	return origin{file: l.file, line: n.Line}
}

func (l *loader) fail(e *Error) { l.errs = append(l.errs, e) }

func (l *loader) warn(o origin, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s := o.String(); s != "" {
		msg = s + ": " + msg
	}
	l.warnings = append(l.warnings, msg)
}

func (l *loader) seen(path string, o origin) {
	if _, ok := l.sources[path]; !ok {
		l.order = append(l.order, path)
	}
	l.sources[path] = o
}

// Load reads the configuration file at path ("" for none), applies the
// REGISTRY_* variables of environ (in the form "NAME=value", as from
// os.Environ), fills defaults and validates the result.
func Load(path string, environ []string) (*Config, error) {
	l := &loader{file: path, envNodes: map[*yaml.Node]string{}, sources: map[string]origin{}}

	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &Error{File: path, Msg: "configuration file not found"}
			}
			return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read configuration file: %v", err)}
		}
		r, err := parseFile(path, data)
		if err != nil {
			return nil, err
		}
		if r != nil {
			root = r
		}
	}

	l.applyEnv(root, environ)
	if len(l.errs) > 0 {
		return nil, l.joined()
	}

	c := &Config{}
	l.decode(root, reflect.ValueOf(c).Elem(), "")
	if len(l.errs) > 0 {
		return nil, l.joined()
	}

	l.normalize(c)
	c.applyDefaults(func(p string) bool { _, ok := l.sources[p]; return ok })
	l.validate(c)
	if len(l.errs) > 0 {
		return nil, l.joined()
	}
	l.unimplementedWarnings()
	l.envWarnings(environ)
	c.warnings = l.warnings
	c.unimplemented = l.unimplemented
	c.sources = make(map[string]string, len(l.sources))
	for p, o := range l.sources {
		c.sources[p] = o.String()
	}
	return c, nil
}

func (l *loader) joined() error {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if (a.Env == "") != (b.Env == "") {
			return a.Env == "" // file errors first
		}
		return a.Line < b.Line
	})
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile parses a YAML document and returns its top-level mapping, or nil
// for an empty document.
func parseFile(path string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, nil
		}
		return nil, yamlError(path, err)
	}
	// A second document is almost certainly a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: path, Line: extra.Line, Msg: "more than one YAML document; a configuration file holds exactly one"}
	} else if err.Error() != "EOF" {
		return nil, yamlError(path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: top.Line, Msg: "expected a mapping of configuration keys at the top level"}
	}
	return top, nil
}

func yamlError(path string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: path, Line: n, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: path, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// ---------------------------------------------------------------------------
// Environment

// k8sLinkRE matches variables Kubernetes service links and Docker links
// inject for a service or container named "registry" or "registry-...":
// REGISTRY_SERVICE_HOST, REGISTRY_PORT, REGISTRY_PORT_5000_TCP_ADDR,
// REGISTRY_UI_SERVICE_PORT_HTTP, ...
var k8sLinkRE = regexp.MustCompile(`^REGISTRY_(?:[A-Z0-9_]+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_[0-9]+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$|^REGISTRY_(?:NAME|ENV_.+)$`)

type envVar struct{ name, value string }

// registryEnv returns the REGISTRY_* variables, last occurrence winning,
// sorted by name so that a section (REGISTRY_STORAGE) is set before the
// keys inside it (REGISTRY_STORAGE_S3_BUCKET), as distribution does.
func registryEnv(environ []string) []envVar {
	m := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		m[name] = val
	}
	vars := make([]envVar, 0, len(m))
	for n, v := range m {
		vars = append(vars, envVar{n, v})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].name < vars[j].name })
	return vars
}

func (l *loader) applyEnv(root *yaml.Node, environ []string) {
	var linkVars []string
	for _, ev := range registryEnv(environ) {
		if ev.name == EnvConfigPath {
			continue
		}
		if k8sLinkRE.MatchString(ev.name) {
			linkVars = append(linkVars, ev.name)
			continue
		}
		val := parseEnvValue(ev.value)
		l.markEnv(val, ev.name)
		segs := strings.Split(ev.name[len(EnvPrefix):], "_")
		if err := l.setPath(root, reflect.TypeOf(Config{}), segs, "", val, ev.name); err != nil {
			l.fail(err)
		}
	}
	if len(linkVars) > 0 {
		l.warnings = append(l.warnings, fmt.Sprintf(
			"ignoring %s: these look like Kubernetes service-link or Docker link variables, not configuration (set enableServiceLinks: false in the pod spec to drop them)",
			strings.Join(linkVars, ", ")))
	}
}

// parseEnvValue parses a variable's value as YAML, as distribution does, so
// "true" is a boolean, "enabled: true" a mapping and "[a, b]" a list. A
// value that is not valid YAML (a password starting with "*" or "%", say),
// which registry:2 rejects, is taken literally as a string.
func parseEnvValue(s string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return doc.Content[0]
}

func (l *loader) markEnv(n *yaml.Node, env string) {
	if n == nil {
		return
	}
	l.envNodes[n] = env
	for _, c := range n.Content {
		l.markEnv(c, env)
	}
}

func (l *loader) envNode(kind yaml.Kind, tag, value, env string) *yaml.Node {
	n := &yaml.Node{Kind: kind, Tag: tag, Value: value}
	l.envNodes[n] = env
	return n
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	storageType  = reflect.TypeOf(Storage{})
	authType     = reflect.TypeOf(Auth{})
)

// fieldInfo describes a struct field as configuration sees it.
type fieldInfo struct {
	index int
	key   string // YAML key
	env   string // extra spelling accepted in environment variable names
}

func fieldsOf(t reflect.Type) []fieldInfo {
	var fs []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		fs = append(fs, fieldInfo{index: i, key: key, env: f.Tag.Get("env")})
	}
	return fs
}

func fieldByKey(t reflect.Type, key string) (fieldInfo, bool) {
	for _, f := range fieldsOf(t) {
		if f.key == key {
			return f, true
		}
	}
	return fieldInfo{}, false
}

func fieldByEnvSegment(t reflect.Type, seg string) (fieldInfo, bool) {
	for _, f := range fieldsOf(t) {
		if strings.EqualFold(f.key, seg) || (f.env != "" && strings.EqualFold(f.env, seg)) {
			return f, true
		}
	}
	return fieldInfo{}, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapIndex finds the value index of key in mapping n (case-insensitive when
// fold is set), or -1.
func mapIndex(n *yaml.Node, key string, fold bool) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if k == key || (fold && strings.EqualFold(k, key)) {
			return i + 1
		}
	}
	return -1
}

// setPath applies one environment variable: it walks the schema (type t)
// and the YAML tree (mapping n) along segs, creating mappings as needed,
// and puts val at the end.
func (l *loader) setPath(n *yaml.Node, t reflect.Type, segs []string, path string, val *yaml.Node, env string) *Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	seg := segs[0]
	o := origin{env: env}
	if seg == "" {
		return o.err(path, "unknown key %q (empty name segment)", joinPath(path, "_"))
	}

	var key string
	var childType reflect.Type
	switch {
	case t == durationType || t == sizeType:
		return o.err(joinPath(path, strings.ToLower(seg)), "unknown key %q: %s is a single value", joinPath(path, strings.ToLower(seg)), path)
	case t.Kind() == reflect.Struct:
		f, ok := fieldByEnvSegment(t, seg)
		if !ok {
			p := joinPath(path, strings.ToLower(seg))
			return o.err(p, "unknown key %q%s", p, suggest(t, strings.ToLower(seg), path))
		}
		key, childType = f.key, t.Field(f.index).Type
	case t.Kind() == reflect.Map || t.Kind() == reflect.Interface:
		key = strings.ToLower(seg)
		if t.Kind() == reflect.Map {
			childType = t.Elem()
		} else {
			childType = t
		}
		if n.Kind == yaml.MappingNode {
			if i := mapIndex(n, seg, true); i >= 0 {
				key = n.Content[i-1].Value // keep the file's spelling
			}
		}
	case t.Kind() == reflect.Slice:
		return l.setSliceElem(n, t, segs, path, val, env)
	default:
		p := joinPath(path, strings.ToLower(seg))
		return o.err(p, "unknown key %q: %s is a single value", p, path)
	}
	cpath := joinPath(path, key)

	if n.Kind != yaml.MappingNode {
		// Replace whatever was there (null, or a value of the wrong kind).
		*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		l.envNodes[n] = env
	}
	i := mapIndex(n, key, t.Kind() == reflect.Struct)
	if len(segs) == 1 {
		if childType == storageType || childType == authType {
			val = l.selectSection(n, i, childType, val, cpath, env)
			if val == nil {
				return nil // error recorded
			}
		}
		knode := l.envNode(yaml.ScalarNode, "!!str", key, env)
		if i >= 0 {
			n.Content[i-1], n.Content[i] = knode, val
		} else {
			n.Content = append(n.Content, knode, val)
		}
		return nil
	}
	var child *yaml.Node
	if i >= 0 {
		child = resolveAlias(n.Content[i])
		if child != n.Content[i] || child.Anchor != "" {
			// Do not modify a node shared through an alias.
			child = l.deepCopy(child)
			n.Content[i] = child
		}
	} else {
		child = l.envNode(yaml.MappingNode, "!!map", "", env)
		n.Content = append(n.Content, l.envNode(yaml.ScalarNode, "!!str", key, env), child)
	}
	return l.setPath(child, childType, segs[1:], cpath, val, env)
}

// setSliceElem handles REGISTRY_..._<index>[_...]: distribution 3 lets an
// environment variable address a list element by index.
func (l *loader) setSliceElem(n *yaml.Node, t reflect.Type, segs []string, path string, val *yaml.Node, env string) *Error {
	o := origin{env: env}
	idx, err := strconv.Atoi(segs[0])
	if err != nil || idx < 0 {
		p := joinPath(path, strings.ToLower(segs[0]))
		return o.err(p, "unknown key %q: %s is a list; set it whole (%s='[...]') or address an element by index", p, path, strings.TrimSuffix(env, "_"+strings.Join(segs, "_")))
	}
	if n.Kind != yaml.SequenceNode {
		*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		l.envNodes[n] = env
	}
	if idx > len(n.Content) {
		return o.err(path, "%s has %d element(s); index %d would leave a gap", path, len(n.Content), idx)
	}
	cpath := fmt.Sprintf("%s[%d]", path, idx)
	if len(segs) == 1 {
		if idx == len(n.Content) {
			n.Content = append(n.Content, val)
		} else {
			n.Content[idx] = val
		}
		return nil
	}
	var child *yaml.Node
	if idx == len(n.Content) {
		child = l.envNode(yaml.MappingNode, "!!map", "", env)
		n.Content = append(n.Content, child)
	} else {
		child = l.deepCopy(resolveAlias(n.Content[idx])) // may be shared through an alias
		n.Content[idx] = child
	}
	return l.setPath(child, t.Elem(), segs[1:], cpath, val, env)
}

// selectSection implements REGISTRY_STORAGE=<driver> and
// REGISTRY_AUTH=<provider>. A plain name selects that driver or provider
// with no parameters and drops any other one configured in the file. For
// storage, the driver-independent keys (delete, maintenance, cache,
// redirect, tag) of the file are kept.
func (l *loader) selectSection(parent *yaml.Node, i int, t reflect.Type, val *yaml.Node, path, env string) *yaml.Node {
	o := origin{env: env}
	var old *yaml.Node
	if i >= 0 {
		old = resolveAlias(parent.Content[i])
	}
	val = resolveAlias(val)
	var names []string // the selected driver/provider keys
	switch {
	case val.Kind == yaml.ScalarNode && val.Tag == "!!null":
		return val // clears the section
	case val.Kind == yaml.ScalarNode:
		name := strings.ToLower(strings.TrimSpace(val.Value))
		if _, ok := fieldByKey(t, name); !ok || (t == storageType && !isDriver(name)) {
			kind := "auth provider"
			if t == storageType {
				kind = "storage driver"
			}
			l.fail(o.err(path, "unknown %s %q%s", kind, name, suggest(t, name, path)))
			return nil
		}
		names = []string{name}
		val = l.envNode(yaml.MappingNode, "!!map", "", env)
		val.Content = []*yaml.Node{
			l.envNode(yaml.ScalarNode, "!!str", name, env),
			l.envNode(yaml.ScalarNode, "!!null", "", env),
		}
	case val.Kind == yaml.MappingNode:
		for j := 0; j+1 < len(val.Content); j += 2 {
			if t == authType || isDriver(val.Content[j].Value) {
				names = append(names, val.Content[j].Value)
			}
		}
	default:
		return val // the decoder reports the type error
	}
	if t != storageType || old == nil || old.Kind != yaml.MappingNode {
		return val
	}
	// Keep the file's driver-independent storage keys that the new value
	// does not set itself.
	var kept []string
	merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	l.envNodes[merged] = env
	for j := 0; j+1 < len(old.Content); j += 2 {
		k := old.Content[j].Value
		if isDriver(k) || mapIndex(val, k, false) >= 0 {
			continue
		}
		merged.Content = append(merged.Content, old.Content[j], old.Content[j+1])
		if k != "cache" {
			kept = append(kept, "storage."+k)
		}
	}
	merged.Content = append(merged.Content, val.Content...)
	if len(kept) > 0 && len(names) > 0 {
		l.warn(o, "selects storage driver %s; berth keeps %s from the file, while registry:2 drops every storage key of the file when REGISTRY_STORAGE is set",
			strings.Join(names, ", "), strings.Join(kept, ", "))
	}
	return merged
}

func isDriver(k string) bool {
	for _, d := range storageDrivers {
		if d == k {
			return true
		}
	}
	return false
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (l *loader) deepCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	if env, ok := l.envNodes[n]; ok {
		l.envNodes[&c] = env
	}
	if n.Content != nil {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			c.Content[i] = l.deepCopy(resolveAlias(ch))
		}
	}
	return &c
}
