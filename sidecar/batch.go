package sidecar

import (
	"errors"
	"slices"
	"sync"

	"github.com/nsproxy/nsproxy/sidecar/api"
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
	op   *attachmentOp // the same change, for the fast path (delta.go)
	done chan error
	// superseded, when set, is asked with d.mu held just before the
	// change is applied: true drops it, answered with errSuperseded.
	superseded func() bool
}

// errSuperseded answers a write that a later write of the same key made
// moot (see Daemon.deleteAttachment).
var errSuperseded = errors.New("superseded by a later write of the same attachment")

// attachmentOp is an attachment write as the fast path applies it: put a
// (whose Name the daemon gives) or delete key del.
type attachmentOp struct {
	put   *api.Attachment
	del   *api.AttachmentKey
	moved []movedName // set by the fast path, as fn sets it
}

// mutateAttachments is mutate for attachment writes, batched. fn may run
// more than once (see runBatch): it must set what it reports, never
// accumulate it. op is fn's change for the fast path, which applies it
// instead of fn when it can.
// superseded, when not nil, may drop the write (errSuperseded) when it is
// its turn.
func (d *Daemon) mutateAttachments(fn func(*State) error, op *attachmentOp, superseded func() bool) error {
	c := &queuedChange{fn: fn, op: op, done: make(chan error, 1), superseded: superseded}
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
//
// Writes the fast path can apply (delta.go) go first, each at its own
// cost; from the first one it cannot, the rest is planned as a whole.
func (d *Daemon) runBatch(batch []*queuedChange) {
	batch = slices.DeleteFunc(batch, func(c *queuedChange) bool {
		if c.superseded != nil && c.superseded() {
			c.done <- errSuperseded
			return true
		}
		return false
	})
	var ed engineDelta
	fast := 0
	if !d.ho.inProgress() {
		for _, c := range batch {
			if c.op == nil || !d.applyFast(c.op, &ed) {
				break
			}
			fast++
		}
	}
	err := d.applyEngineDelta(&ed)
	for _, c := range batch[:fast] {
		c.done <- err
	}
	if batch = batch[fast:]; len(batch) > 0 {
		d.planBatch(batch)
		d.shrink()
	}
}

// applyFast applies op through the fast path, or reports false.
func (d *Daemon) applyFast(op *attachmentOp, ed *engineDelta) bool {
	if op.put != nil {
		moved, ok := d.fastPut(*op.put, ed)
		if ok {
			op.moved = moved
		}
		return ok
	}
	return d.fastDelete(*op.del, ed)
}

// planBatch applies the batch with one full plan and answers each write.
func (d *Daemon) planBatch(batch []*queuedChange) {
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
