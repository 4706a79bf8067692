package sidecar

import (
	"errors"
	"sync"
)

// attachmentBatch gathers the attachment writes (CNI ADD and DEL) that
// arrive while another write holds the daemon's lock. Whoever takes the
// lock next applies every waiting write to one copy of the state and plans
// and commits once: a write's cost grows with the live containers, and
// parallel ADDs (a node starting many pods) then share it instead of
// queueing for it one by one.
type attachmentBatch struct {
	mu    sync.Mutex
	queue []*queuedChange
}

type queuedChange struct {
	fn   func(*State) error
	done chan error
}

// mutateAttachments is mutate for attachment writes, batched. fn may run
// more than once (see runBatch): it must set what it reports, never
// accumulate it.
func (d *Daemon) mutateAttachments(fn func(*State) error) error {
	c := &queuedChange{fn: fn, done: make(chan error, 1)}
	d.batch.mu.Lock()
	d.batch.queue = append(d.batch.queue, c)
	d.batch.mu.Unlock()
	d.mu.Lock()
	d.batch.mu.Lock()
	batch := d.batch.queue
	d.batch.queue = nil
	d.batch.mu.Unlock()
	// Empty: a writer that held the lock before us took ours along and
	// answered it before it let the lock go.
	if len(batch) > 0 {
		d.runBatch(batch)
	}
	d.mu.Unlock()
	return <-c.done
}

// runBatch applies the batch with d.mu held and answers each write. When
// the batch as a whole does not validate, nothing was applied: each write
// is applied alone, so that only the one at fault is refused.
func (d *Daemon) runBatch(batch []*queuedChange) {
	fns := make([]func(*State) error, len(batch))
	for i, c := range batch {
		fns[i] = c.fn
	}
	err := d.changeLocked(false, fns...)
	var ve *validationError
	if len(batch) == 1 || !errors.As(err, &ve) {
		for _, c := range batch {
			c.done <- err
		}
		return
	}
	for _, c := range batch {
		c.done <- d.changeLocked(false, c.fn)
	}
}
