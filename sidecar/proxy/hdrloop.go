package proxy

import (
	"errors"
	"fmt"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
	"golang.org/x/sys/unix"
)

// An accept-proxy bind's connection in its loop before it has a server:
// the loop reads the PROXY header with an incremental parser as bytes
// arrive (no blocking read, no goroutine), bounded by the header timeout
// in its timer heap; then the connect starts on the loop (a server in the
// daemon's own namespace) or on a connector, since a socket in another
// namespace is never created on a loop's thread.

// adoptHeader registers the client's socket and arms the header timeout.
func (l *evloop) adoptHeader(c *pconn) {
	if l.now == 0 {
		l.now = monoNow()
	}
	c.active = l.now
	if !l.watch(c, c.fd[0]) {
		c.fail("closed")
		return
	}
	c.deadline = l.now.add(c.s.headerTimeout())
	l.timers.set(c)
	c.readHeader() // the header is usually there already
}

// readHeader feeds what the client sent to the parser until the socket
// runs dry (edge-triggered) or the header is done. Bytes after the header
// wait in a buffer of the loop for the server, like a short write's.
func (c *pconn) readHeader() {
	l := c.l
	for c.header != nil && !c.closed {
		n, errno := rawRead(c.fd[0], l.buf)
		switch {
		case errno == unix.EAGAIN:
			return
		case errno == unix.EINTR:
			continue
		case errno != 0:
			c.headerDone(nil, fmt.Errorf("proxyproto: reading header: %w", errno))
			return
		case n == 0:
			c.headerDone(nil, c.header.EOF())
			return
		}
		c.active = l.now
		taken, done, h, err := c.header.Feed(l.buf[:n])
		if !done {
			continue
		}
		if err == nil && taken < n {
			c.dir[0].pend = append(l.getSpare(), l.buf[taken:n]...)
		}
		c.headerDone(h, err)
		return
	}
}

// headerDone applies the header (or refuses the connection), then starts
// the first connect attempt (pconn.attempt).
func (c *pconn) headerDone(h *proxyproto.Header, err error) {
	c.header = nil
	c.l.timers.remove(c)
	s := c.s
	if err := s.applyProxyHeader(h, err); err != nil {
		c.s.endErr = err
		c.finish()
		return
	}
	c.connect()
}

// connectorTestHook, when set by a test, runs on the connector before an
// attempt it took from the queue.
var connectorTestHook func(*pconn)

// connectQueue: attempts waiting for a connector; a loop that finds it
// full waits (back-pressure), connectors never wait on a loop.
const connectQueue = 4096

// connect has a connector start the next attempt of c, whose loop takes
// the socket (adoptServer) or ends the connection.
func (e *Engine) connect(c *pconn) {
	e.connectorAttempts.Add(1)
	e.sessWG.Add(1) // Shutdown waits for the attempt too
	e.connectQ <- c
}

// connectors start connect attempts for the loops: a few goroutines, not
// one per connection. A connector whose thread is stuck in a foreign
// namespace is replaced and ends, taking the thread with it.
func (e *Engine) startConnectors(n int) {
	e.connectQ = make(chan *pconn, connectQueue)
	e.pools.refill = make(chan *sockRefill, sockPoolTotal/sockPoolBatchMin)
	e.connectorWG.Add(n)
	for range n {
		go e.connector()
	}
}

// connector runs until the engine stops (Shutdown waits for it, then gives
// back what is left in the refill queue).
func (e *Engine) connector() {
	defer e.connectorWG.Done()
	for {
		select {
		case c := <-e.connectQ:
			if c.startAttempt() {
				e.connectorWG.Add(1)
				go e.connector()
				return // locked to a stuck thread: it dies with this goroutine
			}
		case r := <-e.pools.refill:
			if e.pools.fill(r) {
				e.connectorWG.Add(1)
				go e.connector()
				return
			}
		case <-e.ctx.Done():
			return
		}
	}
}

// startAttempt runs on a connector: it starts the next attempt and gives
// the socket, or the error that ends the session, to the loop. It reports
// a thread stuck in a foreign namespace.
func (c *pconn) startAttempt() (stuck bool) {
	s, l := c.s, c.l
	defer s.e.sessWG.Done()
	if connectorTestHook != nil {
		connectorTestHook(c)
	}
	// Aborted while it waited in the queue: its loop has closed it, or
	// will (the abort's command); connect nothing.
	s.mu.Lock()
	aborted := s.aborted
	s.mu.Unlock()
	if aborted {
		if s.deferred {
			s.deferred = false
			s.at.srv.active.Add(-1) // the attempt the loop chose
		}
		return false
	}
	sfd, err := s.nextAttempt(false)
	if err != nil {
		l.post(func() {
			c.s.endErr = err
			c.finish()
		})
		return errors.Is(err, netns.ErrThreadStuck)
	}
	if !l.post(func() { c.adoptServer(sfd) }) {
		s.dropAttempt(sfd) // the loop stopped and closed the connection
	}
	return false
}
