package content

import "sync"

// keyLock serialises work on one key (an upload, a tag) inside this process
// and forgets keys nobody holds, so it does not grow with traffic.
type keyLock struct {
	mu    sync.Mutex
	locks map[string]*keyLockEntry
}

type keyLockEntry struct {
	mu   sync.Mutex
	refs int // holders and waiters
}

func (k *keyLock) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLockEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyLockEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() { k.release(key, e) }
}

// tryLock takes the key only if nobody holds or waits for it, and reports
// whether it did.
func (k *keyLock) tryLock(key string) (func(), bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks[key] != nil {
		return nil, false
	}
	if k.locks == nil {
		k.locks = make(map[string]*keyLockEntry)
	}
	e := &keyLockEntry{refs: 1}
	e.mu.Lock()
	k.locks[key] = e
	return func() { k.release(key, e) }, true
}

func (k *keyLock) release(key string, e *keyLockEntry) {
	e.mu.Unlock()
	k.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}
