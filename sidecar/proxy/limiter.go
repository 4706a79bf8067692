package proxy

import "sync"

// limiter is a counting semaphore whose limit can change at run time
// (maxconn across reloads). A limit <= 0 means unlimited. Nothing waits on
// it: a loop's acceptor that finds it full stops watching its listening
// socket (the excess waits in the kernel backlog) and leaves a function in
// a queue. A release wakes the first one only (one slot, one acceptor: not
// every paused acceptor per freed slot); a waiter that cannot use its
// wake-up passes it on (passOn). A limit change wakes them all.
type limiter struct {
	mu    sync.Mutex
	limit int
	used  int
	wake  []func(*limiter) // in order of arrival
}

func newLimiter(n int) *limiter { return &limiter{limit: n} }

// tryAcquire takes a slot, or, when the limiter is full, queues wake for
// a release or limit change (each call to wake is one such event: the
// slot may be gone again by the time the caller retries).
func (l *limiter) tryAcquire(wake func(*limiter)) bool {
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
	l.wakeOneLocked()
}

// passOn gives a wake-up its receiver could not use to the next waiter.
func (l *limiter) passOn() {
	l.mu.Lock()
	l.wakeOneLocked()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.wakeAllLocked()
}

// wakeAll calls the waiting functions now (what they waited for changed).
func (l *limiter) wakeAll() {
	l.mu.Lock()
	l.wakeAllLocked()
}

// limited reports whether a limit is set.
func (l *limiter) limited() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit > 0
}

// wakeOneLocked unlocks l.mu and calls the first waiting function if a
// slot is free.
func (l *limiter) wakeOneLocked() {
	if len(l.wake) == 0 || (l.limit > 0 && l.used >= l.limit) {
		l.mu.Unlock()
		return
	}
	f := l.wake[0]
	l.wake[0] = nil
	l.wake = l.wake[1:]
	l.mu.Unlock()
	f(l)
}

// wakeAllLocked unlocks l.mu and calls the waiting functions.
func (l *limiter) wakeAllLocked() {
	wake := l.wake
	l.wake = nil
	l.mu.Unlock()
	for _, f := range wake {
		f(l)
	}
}
