package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// factory is a thread that lives inside one namespace and creates sockets
// there, so the hot path pays a channel hand-off instead of two setns calls
// (each of which allocates a new nsproxy in the kernel).
type factory struct {
	reqs chan sockReq
	quit chan struct{}
	done chan struct{}
	err  error // set before done is closed when the thread cannot enter the namespace
}

type sockReq struct {
	domain, typ, proto int
	resp               chan sockResp
}

type sockResp struct {
	fd  int
	err error
}

func newFactory(nsfd int) *factory {
	f := &factory{reqs: make(chan sockReq), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go f.run(nsfd, ready)
	<-ready
	return f
}

func (f *factory) run(nsfd int, ready chan<- struct{}) {
	// Never unlocked: the thread leaves the home namespace for good and the
	// runtime destroys it when this goroutine returns.
	runtime.LockOSThread()
	defer close(f.done)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		f.err = fmt.Errorf("socket thread setns: %w", err)
		close(ready)
		return
	}
	close(ready)
	for {
		select {
		case r := <-f.reqs:
			fd, err := unix.Socket(r.domain, r.typ, r.proto)
			r.resp <- sockResp{fd, err}
		case <-f.quit:
			return
		}
	}
}

// socket asks the thread for a socket. A request the thread accepted is
// always answered, so no fd is ever dropped on the floor.
func (f *factory) socket(domain, typ, proto int) (int, error) {
	r := sockReq{domain: domain, typ: typ, proto: proto, resp: make(chan sockResp, 1)}
	select {
	case f.reqs <- r:
	case <-f.done:
		if f.err != nil {
			return -1, f.err
		}
		return -1, ErrClosed
	}
	resp := <-r.resp
	return resp.fd, resp.err
}

func (f *factory) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}
