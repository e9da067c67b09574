package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSlowThenLock(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{SlowAfter: 2, MaxFailures: 5, AccountMaxFailures: 100, Delay: 100 * time.Millisecond, MaxDelay: 250 * time.Millisecond, Lockout: time.Minute, Window: time.Hour, Now: c.now})
	steps := []struct {
		delay time.Duration
		lock  bool
	}{
		{0, false}, {0, false}, // failures 0, 1
		{100 * time.Millisecond, false}, // 2 failures
		{200 * time.Millisecond, false}, // 3
		{250 * time.Millisecond, false}, // 4 (capped)
		{0, true},                       // 5: locked
	}
	for i, s := range steps {
		d := l.Check("1.2.3.4", fmt.Sprintf("user%d", i))
		if d.Delay != s.delay || (d.RetryAfter > 0) != s.lock {
			t.Fatalf("attempt %d: %+v, want delay %v lock %v", i, d, s.delay, s.lock)
		}
		if !s.lock {
			l.Fail("1.2.3.4", fmt.Sprintf("user%d", i))
		}
	}
	if d := l.Check("1.2.3.4", ""); d.RetryAfter != time.Minute {
		t.Errorf("retry after = %v", d.RetryAfter)
	}
	if d := l.Check("5.6.7.8", "user0"); d != (Decision{}) {
		t.Errorf("another address is not affected: %+v", d)
	}
	c.t = c.t.Add(time.Minute)
	if d := l.Check("1.2.3.4", ""); d != (Decision{}) {
		t.Errorf("after the lockout: %+v", d)
	}
}

func TestAccountLimitAcrossAddresses(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{SlowAfter: 100, MaxFailures: 100, AccountMaxFailures: 3, Lockout: time.Minute, Now: c.now})
	for i := 0; i < 3; i++ {
		l.Fail(fmt.Sprintf("10.0.0.%d", i), "admin")
	}
	if d := l.Check("10.9.9.9", "admin"); d.RetryAfter == 0 {
		t.Errorf("account not locked: %+v", d)
	}
	// A success does not unlock a locked account.
	l.Succeed("10.9.9.9", "admin")
	if d := l.Check("10.9.9.9", "admin"); d.RetryAfter == 0 {
		t.Errorf("success unlocked: %+v", d)
	}
	if d := l.Check("10.9.9.9", "bob"); d != (Decision{}) {
		t.Errorf("other account: %+v", d)
	}
}

func TestSuccessResetsAndWindowForgets(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{SlowAfter: 1, MaxFailures: 100, AccountMaxFailures: 100, Delay: time.Second, MaxDelay: time.Second, Window: time.Minute, Now: c.now})
	l.Fail("", "joe")
	if d := l.Check("", "joe"); d.Delay != time.Second {
		t.Fatalf("delay = %v", d.Delay)
	}
	l.Succeed("", "joe")
	if d := l.Check("", "joe"); d.Delay != 0 {
		t.Errorf("after success: %v", d.Delay)
	}
	l.Fail("1.1.1.1", "")
	c.t = c.t.Add(2 * time.Minute)
	if d := l.Check("1.1.1.1", ""); d.Delay != 0 {
		t.Errorf("after the window: %v", d.Delay)
	}
}

func TestBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{MaxEntries: 100, Now: c.now})
	for i := 0; i < 1000; i++ {
		l.Fail(fmt.Sprintf("ip%d", i), fmt.Sprintf("u%d", i))
	}
	if n := len(l.ips) + len(l.users); n > 200 {
		t.Errorf("%d entries kept", n)
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	l.Fail("a", "b")
	l.Succeed("a", "b")
	if d := l.Check("a", "b"); d != (Decision{}) {
		t.Error(d)
	}
}
