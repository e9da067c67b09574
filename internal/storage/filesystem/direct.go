package filesystem

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Large uploads are written around the page cache (O_DIRECT on Linux) once
// they pass directThreshold. Copying a layer into the page cache costs more
// CPU than hashing it: the kernel allocates and fills a fresh page for every
// 4 KiB, and on virtual machines whose memory the host maps lazily each new
// page also faults on the host (0.9-2.6 s of CPU per GiB measured here, against
// 0.5 s for SHA-256 and 0.1 s for a direct write). A multi-gigabyte push also
// no longer evicts the hot small files (manifests, links) from the cache.
// What is given up is a warm cache for the first pull of a just-pushed large
// layer, which is then read from disk. Small blobs (configs, small layers)
// stay below the threshold and are written through the cache as before.
//
// Direct writes need an aligned buffer, length and file offset, so bytes are
// staged in an aligned buffer and written a full buffer at a time, by a
// goroutine while the next buffer fills; Close and Commit write what
// remains (the unaligned tail through the cache).
const (
	directThreshold = 2 << 20 // bytes an upload holds before it goes direct; a multiple of directAlign
	directAlign     = 4096    // the largest logical block size in use
	directStage     = 2 << 20 // bytes per direct write
)

var stagePool = sync.Pool{New: func() any { return newAligned(directStage) }}

// newAligned returns a buffer of n bytes starting at a directAlign boundary.
func newAligned(n int) *[]byte {
	raw := make([]byte, n+directAlign)
	off := 0
	if rem := int(addr(raw) % directAlign); rem != 0 {
		off = directAlign - rem
	}
	b := raw[off : off+n : off+n]
	return &b
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func alignDown(n int64) int64 { return n - n%directAlign }

// stager is a direct-mode writer's staging: the buffer being filled, and at
// most one full buffer being written by a goroutine, so the stream goes on
// being read and hashed while the disk takes the previous buffer (a direct
// write returns only when the device has the data). Only the stager
// touches the file until finish returns.
type stager struct {
	f        *os.File
	cur      *[]byte
	n        int // bytes in *cur
	spare    *[]byte
	inflight chan stagedWrite // the write in flight, or nil
}

type stagedWrite struct {
	buf      []byte
	n        int
	err      error
	fellBack bool // the filesystem refused direct I/O: written through the cache
}

func newStager(f *os.File) *stager {
	return &stager{f: f, cur: stagePool.Get().(*[]byte)}
}

// free is the stage's unfilled space; the writer fills it and then counts
// what it put there (fileWriter.staged).
func (s *stager) free() []byte { return (*s.cur)[s.n:] }

func (s *stager) full() bool { return s.n == len(*s.cur) }

// flush hands the full stage to a background write once the previous one
// is done. lost is how many accepted bytes will not reach the file (only
// on error); with fellBack the file is out of direct mode and the stager
// done.
func (s *stager) flush() (lost int, fellBack bool, err error) {
	if lost, fellBack, err = s.wait(); err != nil || fellBack {
		return lost, fellBack, err
	}
	if s.spare == nil {
		s.spare = stagePool.Get().(*[]byte)
	}
	w := stagedWrite{buf: (*s.cur)[:s.n]}
	s.cur, s.spare, s.n = s.spare, s.cur, 0
	s.inflight = make(chan stagedWrite, 1)
	go func(done chan<- stagedWrite) {
		w.n, w.err = s.f.Write(w.buf)
		if w.n == 0 && errors.Is(w.err, syscall.EINVAL) {
			if w.err = setDirect(s.f, false); w.err == nil {
				w.fellBack = true
				w.n, w.err = s.f.Write(w.buf)
			}
		}
		done <- w
	}(s.inflight)
	return 0, false, nil
}

// wait waits for the write in flight. If it failed, the rest of it and the
// stage are lost. If the filesystem refused direct I/O, the stage is
// written through the cache too.
func (s *stager) wait() (lost int, fellBack bool, err error) {
	if s.inflight == nil {
		return 0, false, nil
	}
	w := <-s.inflight
	s.inflight = nil
	if w.err == nil && w.n != len(w.buf) {
		w.err = io.ErrShortWrite
	}
	if w.err != nil {
		lost = len(w.buf) - w.n + s.n
		s.n = 0
		return lost, false, w.err
	}
	if w.fellBack {
		lost, err = s.writeCached((*s.cur)[:s.n])
		return lost, true, err
	}
	return 0, false, nil
}

// finish waits for the write in flight and writes the stage: its aligned
// part direct, the tail through the cache. The file is then out of direct
// mode.
func (s *stager) finish() (lost int, err error) {
	lost, fellBack, err := s.wait()
	if err != nil || fellBack {
		return lost, err
	}
	buf := (*s.cur)[:s.n]
	aligned := buf[:alignDown(int64(len(buf)))]
	n, err := s.f.Write(aligned)
	if n == 0 && errors.Is(err, syscall.EINVAL) {
		err = nil // refused: all of it through the cache below
	}
	if err != nil {
		return len(buf) - n, err
	}
	if err := setDirect(s.f, false); err != nil {
		return len(buf) - n, err
	}
	return s.writeCached(buf[n:])
}

// writeCached writes b through the page cache (direct mode already off).
func (s *stager) writeCached(b []byte) (lost int, err error) {
	n, err := s.f.Write(b)
	s.n = 0
	if err != nil {
		return len(b) - n, err
	}
	return 0, nil
}

// release waits for any write in flight and returns the buffers.
func (s *stager) release() {
	if s.inflight != nil {
		<-s.inflight
		s.inflight = nil
	}
	for _, b := range []*[]byte{s.cur, s.spare} {
		// The pool holds only buffers a direct write can use.
		if b != nil && len(*b) == directStage && addr(*b)%directAlign == 0 {
			stagePool.Put(b)
		}
	}
	s.cur, s.spare, s.n = nil, nil, 0
}
