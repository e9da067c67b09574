package objstore

import (
	"sync"
	"sync/atomic"
)

// BufferPool hands out the part or segment buffers of an object-store
// driver's writers: byte slices of one capacity, reused between writers,
// and counted while they are held.
type BufferPool struct {
	pool sync.Pool // *[]byte of cap size
	held atomic.Int64
}

// NewBufferPool returns a pool of buffers of capacity size.
func NewBufferPool(size int64) *BufferPool {
	bp := &BufferPool{}
	bp.pool.New = func() any { b := make([]byte, 0, size); return &b }
	return bp
}

// Get returns an empty buffer of the pool's capacity.
func (bp *BufferPool) Get() []byte {
	b := bp.pool.Get().(*[]byte)
	bp.held.Add(1)
	return (*b)[:0]
}

// Put returns b, which Get gave out, to the pool.
func (bp *BufferPool) Put(b []byte) {
	bp.held.Add(-1)
	b = b[:0]
	bp.pool.Put(&b)
}

// Held is the number of buffers given out and not yet returned.
func (bp *BufferPool) Held() int64 {
	return bp.held.Load()
}
