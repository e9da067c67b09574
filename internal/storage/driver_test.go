package storage

import (
	"context"
	"errors"
	"testing"
)

func TestCheckOpAndCheckObject(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		p         string
		op, obj   error  // what CheckOp and CheckObject return (errors.Is); nil: no error
		opOp, oOp string // the PathError's Op for each, when one is returned
	}{
		{name: "object path", ctx: live, p: "/a/b"},
		{name: "root", ctx: live, p: "/", obj: ErrInvalidPath, oOp: "put"},
		{name: "bad path", ctx: live, p: "/a/../b", op: ErrInvalidPath, obj: ErrInvalidPath, opOp: "check", oOp: "check"},
		{name: "bad path wins over the context", ctx: cancelled, p: "a", op: ErrInvalidPath, obj: ErrInvalidPath, opOp: "check", oOp: "check"},
		{name: "cancelled", ctx: cancelled, p: "/a", op: context.Canceled, obj: context.Canceled, opOp: "put", oOp: "put"},
		{name: "root wins over the context", ctx: cancelled, p: "/", op: context.Canceled, obj: ErrInvalidPath, opOp: "put", oOp: "put"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range []struct {
				name   string
				fn     func(context.Context, string, string) error
				want   error
				wantOp string
			}{{"CheckOp", CheckOp, c.op, c.opOp}, {"CheckObject", CheckObject, c.obj, c.oOp}} {
				err := f.fn(c.ctx, "put", c.p)
				if f.want == nil {
					if err != nil {
						t.Errorf("%s(%q) = %v, want nil", f.name, c.p, err)
					}
					continue
				}
				var pe *PathError
				if !errors.Is(err, f.want) || !errors.As(err, &pe) || pe.Path != c.p || pe.Op != f.wantOp {
					t.Errorf("%s(%q) = %v, want a PathError %s %s: %v", f.name, c.p, err, f.wantOp, c.p, f.want)
				}
			}
		})
	}
}
