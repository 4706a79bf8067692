package proxy

import "sync"

// limiter is a counting semaphore whose limit can change at run time
// (maxconn across reloads). A limit <= 0 means unlimited. Nothing waits on
// it: a loop's acceptor that finds it full stops watching its listening
// socket (the excess waits in the kernel backlog) and leaves a function
// that the next release or limit change calls.
type limiter struct {
	mu    sync.Mutex
	limit int
	used  int
	wake  []func() // called once by the next release or setLimit
}

func newLimiter(n int) *limiter { return &limiter{limit: n} }

// tryAcquire takes a slot, or, when the limiter is full, keeps wake for
// the next release or limit change (each call to wake is one such event:
// the slot may be gone again by the time the caller retries).
func (l *limiter) tryAcquire(wake func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit <= 0 || l.used < l.limit {
		l.used++
		return true
	}
	l.wake = append(l.wake, wake)
	return false
}

func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.wakeLocked()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.wakeLocked()
}

// wakeAll calls the waiting functions now (what they waited for changed).
func (l *limiter) wakeAll() {
	l.mu.Lock()
	l.wakeLocked()
}

// limited reports whether a limit is set.
func (l *limiter) limited() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit > 0
}

// wakeLocked unlocks l.mu and calls the waiting functions.
func (l *limiter) wakeLocked() {
	wake := l.wake
	l.wake = nil
	l.mu.Unlock()
	for _, f := range wake {
		f()
	}
}
