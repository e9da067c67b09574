package driverparams

import (
	"math"
	"reflect"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct {
		name    string
		m       map[string]any
		want    string
		wantErr []string
	}{
		{name: "missing keeps the default", m: map[string]any{}, want: "default"},
		{name: "nil keeps the default", m: map[string]any{"key": nil}, want: "default"},
		{name: "string", m: map[string]any{"key": " v "}, want: " v "},
		{name: "key in any case", m: map[string]any{"KeY": "v"}, want: "v"},
		{name: "bool", m: map[string]any{"key": true}, want: "true"},
		{name: "int", m: map[string]any{"key": 2024}, want: "2024"},
		{name: "uint8", m: map[string]any{"key": uint8(7)}, want: "7"},
		{name: "float", m: map[string]any{"key": 1.5}, want: "1.5"},
		{name: "list", m: map[string]any{"key": []any{"a"}}, want: "default",
			wantErr: []string{"the key parameter should be a string, not []interface {}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := New(c.m)
			got := "default"
			in.String("key", &got)
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			if errs := in.Errors(); !reflect.DeepEqual(errs, c.wantErr) {
				t.Errorf("errors %q, want %q", errs, c.wantErr)
			}
		})
	}
}

func TestBool(t *testing.T) {
	cases := []struct {
		name    string
		v       any
		want    bool
		wantErr []string
	}{
		{name: "missing keeps the default", v: nil, want: true},
		{name: "false", v: false, want: false},
		{name: "string false", v: "false", want: false},
		{name: "string False", v: "False", want: false},
		{name: "string 0 padded", v: " 0 ", want: false},
		{name: "string TRUE", v: "TRUE", want: true},
		{name: "bad string", v: "no", want: true,
			wantErr: []string{`the key parameter should be a boolean, not "no"`}},
		{name: "number", v: 0, want: true,
			wantErr: []string{"the key parameter should be a boolean, not int"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]any{}
			if c.v != nil {
				m["key"] = c.v
			}
			in := New(m)
			got := true
			in.Bool("key", &got)
			if got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
			if errs := in.Errors(); !reflect.DeepEqual(errs, c.wantErr) {
				t.Errorf("errors %q, want %q", errs, c.wantErr)
			}
		})
	}
}

func TestInt(t *testing.T) {
	cases := []struct {
		name    string
		v       any
		want    int64
		wantErr []string
	}{
		{name: "missing keeps the default", v: nil, want: -1},
		{name: "int", v: 5242880, want: 5242880},
		{name: "int8", v: int8(-8), want: -8},
		{name: "int16", v: int16(16), want: 16},
		{name: "int32", v: int32(1 << 20), want: 1 << 20},
		{name: "int64", v: int64(7 << 20), want: 7 << 20},
		{name: "uint", v: uint(3), want: 3},
		{name: "uint8", v: uint8(8), want: 8},
		{name: "uint16", v: uint16(16), want: 16},
		{name: "uint32", v: uint32(32), want: 32},
		{name: "uint64", v: uint64(6 << 20), want: 6 << 20},
		{name: "uint64 too large", v: uint64(math.MaxUint64), want: -1,
			wantErr: []string{"the key parameter must be an integer: 18446744073709551615 is too large"}},
		{name: "float64 from JSON", v: 1.048576e7, want: 10485760},
		{name: "float32", v: float32(12), want: 12},
		{name: "float with a fraction", v: 1.5, want: -1,
			wantErr: []string{"the key parameter must be an integer: 1.5 is not an integer"}},
		{name: "decimal string", v: "6291456", want: 6291456},
		{name: "hex string", v: "0x800000", want: 8 << 20},
		{name: "padded string", v: " 7 ", want: 7},
		{name: "size with a unit", v: "10MB", want: -1,
			wantErr: []string{`the key parameter must be an integer: "10MB" is not an integer`}},
		{name: "bool", v: true, want: -1,
			wantErr: []string{"the key parameter must be an integer: true (bool) is not an integer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]any{}
			if c.v != nil {
				m["key"] = c.v
			}
			in := New(m)
			got := int64(-1)
			in.Int("key", &got)
			if got != c.want {
				t.Errorf("got %d, want %d", got, c.want)
			}
			if errs := in.Errors(); !reflect.DeepEqual(errs, c.wantErr) {
				t.Errorf("errors %q, want %q", errs, c.wantErr)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	cases := []struct {
		name  string
		m     map[string]any
		known [][]string
		want  []string
	}{
		{name: "none", m: map[string]any{"a": 1, "B": 2}, known: [][]string{{"a", "b"}}},
		{name: "sorted, in their own case", m: map[string]any{"a": 1, "Zed": 2, "Bee": 3, "c": 4},
			known: [][]string{{"a", "c"}}, want: []string{"Bee", "Zed"}},
		{name: "several lists", m: map[string]any{"a": 1, "rootdirectory": 2, "x": 3},
			known: [][]string{{"a"}, {"rootdirectory"}}, want: []string{"x"}},
		{name: "no lists", m: map[string]any{"a": 1}, want: []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := New(c.m).Unknown(c.known...); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestErrorsCollect(t *testing.T) {
	in := New(map[string]any{"s": []int{1}, "b": "maybe", "n": "x"})
	var s string
	var b bool
	var n int64
	in.String("s", &s)
	in.Bool("b", &b)
	in.Int("n", &n)
	in.Errorf("usefipsendpoint is not supported")
	want := []string{
		"the s parameter should be a string, not []int",
		`the b parameter should be a boolean, not "maybe"`,
		`the n parameter must be an integer: "x" is not an integer`,
		"usefipsendpoint is not supported",
	}
	errs := in.Errors()
	if !reflect.DeepEqual(errs, want) {
		t.Fatalf("errors %q, want %q", errs, want)
	}
	errs[0] = "changed"
	if in.Errors()[0] == "changed" {
		t.Error("Errors returned the Parser's own slice")
	}
}
