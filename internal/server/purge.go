package server

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/berth-registry/berth/internal/content"
)

// UploadPurging is storage.maintenance.uploadpurging: deleting, in the
// background, uploads that started longer than Age ago, every Interval.
type UploadPurging struct {
	Enabled  bool
	Age      time.Duration
	Interval time.Duration
	// DryRun only logs what would be deleted.
	DryRun bool
	// FirstDelay returns how long to wait before the first purge; nil
	// means a random wait below an hour, as registry:2 does, so instances
	// started together do not all walk storage at once.
	FirstDelay func() time.Duration
	// Ran, if set, is called after each purge with its outcome (tests).
	Ran func(content.PurgeResult, error)
}

// defaultFirstDelay is registry:2's jitter: up to an hour.
func defaultFirstDelay() time.Duration { return rand.N(time.Hour) }

// uploadPurger is the background purge loop, owned by the server from New
// to Close.
type uploadPurger struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has returned
}

// startUploadPurger starts the loop when purging is enabled; a read-only
// registry never purges (content.PurgeUploads would refuse anyway), as
// registry:2 does. Purging only touches uploads, never the index, so it
// need not wait for a background index build.
func startUploadPurger(ctx context.Context, reg *content.Registry, opts Options, log *slog.Logger) *uploadPurger {
	p := opts.UploadPurging
	if !p.Enabled || opts.ReadOnly {
		return nil
	}
	if p.Age <= 0 || p.Interval <= 0 {
		log.Warn("upload purging disabled: age and interval must be positive", "age", p.Age, "interval", p.Interval)
		return nil
	}
	firstDelay := p.FirstDelay
	if firstDelay == nil {
		firstDelay = defaultFirstDelay
	}
	wait := firstDelay()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	up := &uploadPurger{cancel: cancel, done: make(chan struct{})}
	log.Info("upload purging enabled", "first_run_in", wait.Round(time.Second), "age", p.Age, "interval", p.Interval, "dryrun", p.DryRun)
	go func() {
		defer close(up.done)
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			res, err := reg.PurgeUploads(ctx, time.Now().Add(-p.Age), p.DryRun)
			if ctx.Err() != nil {
				return // stopped by Close: not a failure, nor a run to report
			}
			if err != nil {
				log.Warn("upload purge failed; trying again at the next interval", "err", err, "next_in", p.Interval)
			}
			if p.Ran != nil {
				p.Ran(res, err)
			}
			timer.Reset(p.Interval)
		}
	}()
	return up
}

// stop ends the loop, interrupting a purge in progress, and waits for it.
func (up *uploadPurger) stop() {
	if up == nil {
		return
	}
	up.cancel()
	<-up.done
}
