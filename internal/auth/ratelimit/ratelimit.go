// Package ratelimit slows down and then refuses repeated authentication
// failures, counted per client address and per account. Successes clear an
// account's count (not its address's, so one valid login does not reset a
// scan of other accounts from the same address).
package ratelimit

import (
	"sync"
	"time"
)

// Options configure a Limiter. Zero fields take the defaults.
type Options struct {
	// SlowAfter failures in a row, each further attempt is delayed
	// (Delay, doubling up to MaxDelay). Default 3.
	SlowAfter int
	// MaxFailures within Window locks the address or account out for
	// Lockout: attempts are refused with 429. Default 10 per address,
	// AccountMaxFailures (default 20) per account.
	MaxFailures        int
	AccountMaxFailures int
	// Window after the last failure when counts are forgotten. Default 10m.
	Window time.Duration
	// Lockout duration. Default 5m.
	Lockout time.Duration
	// Delay is the first slow-down; MaxDelay caps it. Defaults 250ms, 4s.
	// A negative Delay disables slowing down.
	Delay    time.Duration
	MaxDelay time.Duration
	// MaxEntries bounds the memory used; the stalest entries go first.
	// Default 100000.
	MaxEntries int
	Now        func() time.Time
}

// Limiter tracks failures. It is safe for concurrent use.
type Limiter struct {
	o      Options
	mu     sync.Mutex
	ips    map[string]*counter
	users  map[string]*counter
	lastGC time.Time
}

type counter struct {
	failures    int
	last        time.Time
	lockedUntil time.Time
}

// New returns a limiter with o's settings.
func New(o Options) *Limiter {
	if o.SlowAfter <= 0 {
		o.SlowAfter = 3
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 10
	}
	if o.AccountMaxFailures <= 0 {
		o.AccountMaxFailures = 20
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	if o.Lockout <= 0 {
		o.Lockout = 5 * time.Minute
	}
	if o.Delay == 0 {
		o.Delay = 250 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 4 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{o: o, ips: map[string]*counter{}, users: map[string]*counter{}}
}

// Decision is what to do with an attempt.
type Decision struct {
	// Delay before answering (zero: none).
	Delay time.Duration
	// RetryAfter > 0 means refuse with 429 and this Retry-After.
	RetryAfter time.Duration
}

// Check decides about an attempt from ip for account ("" if none).
func (l *Limiter) Check(ip, account string) Decision {
	if l == nil {
		return Decision{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	var d Decision
	for _, c := range []*counter{l.get(l.ips, ip, now), l.get(l.users, account, now)} {
		if c == nil {
			continue
		}
		if now.Before(c.lockedUntil) {
			if ra := c.lockedUntil.Sub(now); ra > d.RetryAfter {
				d.RetryAfter = ra
			}
			continue
		}
		if l.o.Delay > 0 && c.failures >= l.o.SlowAfter {
			delay := l.o.Delay << min(c.failures-l.o.SlowAfter, 16)
			if delay > l.o.MaxDelay || delay <= 0 {
				delay = l.o.MaxDelay
			}
			d.Delay = max(d.Delay, delay)
		}
	}
	if d.RetryAfter > 0 {
		d.Delay = 0
	}
	return d
}

// Fail records a failed attempt.
func (l *Limiter) Fail(ip, account string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.o.Now()
	l.gc(now)
	l.fail(l.ips, ip, l.o.MaxFailures, now)
	l.fail(l.users, account, l.o.AccountMaxFailures, now)
}

// Succeed clears the account's failures.
func (l *Limiter) Succeed(ip, account string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.users[account]; ok && !l.o.Now().Before(c.lockedUntil) {
		delete(l.users, account)
	}
}

func (l *Limiter) get(m map[string]*counter, key string, now time.Time) *counter {
	if key == "" {
		return nil
	}
	c, ok := m[key]
	if !ok {
		return nil
	}
	if now.Sub(c.last) > l.o.Window && !now.Before(c.lockedUntil) {
		delete(m, key)
		return nil
	}
	return c
}

func (l *Limiter) fail(m map[string]*counter, key string, max int, now time.Time) {
	if key == "" {
		return
	}
	c := l.get(m, key, now)
	if c == nil {
		c = &counter{}
		m[key] = c
	}
	c.failures++
	c.last = now
	if c.failures >= max {
		c.lockedUntil = now.Add(l.o.Lockout)
		c.failures = 0
	}
}

// gc drops forgotten entries, at most once per second, and the stalest
// ones when a map is over its bound.
func (l *Limiter) gc(now time.Time) {
	if now.Sub(l.lastGC) < time.Second && len(l.ips)+len(l.users) < l.o.MaxEntries {
		return
	}
	l.lastGC = now
	for _, m := range []map[string]*counter{l.ips, l.users} {
		for k, c := range m {
			if now.Sub(c.last) > l.o.Window && !now.Before(c.lockedUntil) {
				delete(m, k)
			}
		}
		// Under a flood of distinct keys, forget arbitrary entries (map
		// order is random) rather than grow without bound.
		for k := range m {
			if len(m) <= l.o.MaxEntries/2 {
				break
			}
			delete(m, k)
		}
	}
}
