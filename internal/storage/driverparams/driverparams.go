// Package driverparams reads the parameter maps of registry:2's storage
// driver sections (storage.s3, storage.swift, ...) as a YAML or JSON
// decoder or the REGISTRY_STORAGE_* environment variables produce them:
// keys in any case, and values that may be strings, booleans or numbers,
// with numbers and booleans also given as strings.
package driverparams

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Parser reads values out of one parameter map, collecting a message for
// each value of the wrong type instead of stopping at the first.
type Parser struct {
	m    map[string]any
	errs []string
}

// New returns a Parser over m.
func New(m map[string]any) *Parser {
	return &Parser{m: m}
}

// Unknown returns, sorted, the keys of the map that are in none of the
// known lists (which hold lower-case keys; the map's keys are compared
// case-insensitively).
func (p *Parser) Unknown(known ...[]string) []string {
	var unknown []string
	for k := range p.m {
		lk := strings.ToLower(k)
		if !slices.ContainsFunc(known, func(keys []string) bool { return slices.Contains(keys, lk) }) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown
}

// Get returns the value of key (lower case), whatever the case of the
// map's key, or nil if there is none.
func (p *Parser) Get(key string) any {
	for k, v := range p.m {
		if strings.ToLower(k) == key {
			return v
		}
	}
	return nil
}

// Errorf records a message about a parameter.
func (p *Parser) Errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// Errors returns the messages recorded so far, in the order they were.
func (p *Parser) Errors() []string {
	return slices.Clone(p.errs)
}

// String sets *dst to the value of key if it is there: a string as it is,
// a boolean or a number formatted.
func (p *Parser) String(key string, dst *string) {
	switch v := p.Get(key).(type) {
	case nil:
	case string:
		*dst = v
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		*dst = fmt.Sprint(v)
	default:
		p.Errorf("the %s parameter should be a string, not %T", key, v)
	}
}

// Bool sets *dst to the value of key if it is there: a boolean, or a
// string strconv.ParseBool accepts.
func (p *Parser) Bool(key string, dst *bool) {
	switch v := p.Get(key).(type) {
	case nil:
	case bool:
		*dst = v
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			p.Errorf("the %s parameter should be a boolean, not %q", key, v)
			return
		}
		*dst = b
	default:
		p.Errorf("the %s parameter should be a boolean, not %T", key, v)
	}
}

// Int sets *dst to the value of key if it is there: any integer type, a
// float64 or float32 with no fraction, or a string strconv.ParseInt
// reads with base 0 ("0x800000" too). Sizes are given this way.
func (p *Parser) Int(key string, dst *int64) {
	v := p.Get(key)
	if v == nil {
		return
	}
	n, err := toInt64(v)
	if err != nil {
		p.Errorf("the %s parameter must be an integer: %v", key, err)
		return
	}
	*dst = n
}

// toInt64 accepts the integer forms a YAML or JSON decoder or an
// environment variable produces.
func toInt64(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int64:
		return v, nil
	case uint:
		return toInt64(uint64(v))
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", v)
		}
		return int64(v), nil
	case float32:
		return toInt64(float64(v))
	case float64:
		if v != math.Trunc(v) || v > math.MaxInt64 || v < math.MinInt64 {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
	}
}
