package proxy

import (
	"context"
	"sync"
)

// limiter is a counting semaphore whose limit can change at run time
// (maxconn across reloads). A limit <= 0 means unlimited.
type limiter struct {
	mu      sync.Mutex
	limit   int
	used    int
	waiters int
	wake    chan struct{}
}

func newLimiter(n int) *limiter { return &limiter{limit: n, wake: make(chan struct{})} }

func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.limit <= 0 || l.used < l.limit {
			l.used++
			l.mu.Unlock()
			return nil
		}
		l.waiters++
		ch := l.wake
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		l.mu.Lock()
		l.waiters--
		l.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.broadcastLocked()
	l.mu.Unlock()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.broadcastLocked()
	l.mu.Unlock()
}

// limited reports whether a limit is set.
func (l *limiter) limited() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit > 0
}

func (l *limiter) broadcastLocked() {
	if l.waiters > 0 {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}
