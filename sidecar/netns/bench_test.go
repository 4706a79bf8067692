package netns

// Micro-benchmarks of the namespace switching paths (issue 6). They need
// root (they create namespaces with internal/testns) and skip otherwise.
//
//	go test -run '^$' -bench . -benchtime 1s ./sidecar/netns/
//
// BenchmarkSocketDefault is the floor: socket(2)+close(2) in the daemon's own
// namespace. BenchmarkSocketInNamespace makes it through Handle.Socket (a
// locked goroutine that switches there and back); the engine's dials pay
// less, only the two setns(2) of BenchmarkSetnsRoundTrip (Handle.Dial).
// BenchmarkSetnsRoundTrip is the bare cost of two setns(2) calls, and
// BenchmarkDoSetns the cost of Handle.Do (a goroutine on a locked thread that
// switches there and back).

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

// benchHandle creates a namespace and opens a handle on it; both go away
// when the benchmark ends.
func benchHandle(b *testing.B) *Handle {
	b.Helper()
	name := testns.New(b, "K")
	h, err := OpenPath(filepath.Join(DefaultDir, name), name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

const benchSockType = unix.SOCK_STREAM | unix.SOCK_NONBLOCK

func BenchmarkSocketDefault(b *testing.B) {
	for b.Loop() {
		fd, err := unix.Socket(unix.AF_INET, benchSockType|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}

func BenchmarkSocketInNamespace(b *testing.B) {
	h := benchHandle(b)
	// Warm up (thread creation) outside the timing.
	if fd, err := h.Socket(unix.AF_INET, benchSockType, 0); err != nil {
		b.Fatal(err)
	} else {
		unix.Close(fd)
	}
	for b.Loop() {
		fd, err := h.Socket(unix.AF_INET, benchSockType, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}

// BenchmarkSocketInNamespaceParallel: Handle.Socket from several goroutines
// at once.
func BenchmarkSocketInNamespaceParallel(b *testing.B) {
	h := benchHandle(b)
	if fd, err := h.Socket(unix.AF_INET, benchSockType, 0); err != nil {
		b.Fatal(err)
	} else {
		unix.Close(fd)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fd, err := h.Socket(unix.AF_INET, benchSockType, 0)
			if err != nil {
				b.Error(err)
				return
			}
			unix.Close(fd)
		}
	})
}

// BenchmarkSetnsRoundTrip: setns into the namespace and back on one locked
// thread, without creating anything: the kernel's part of a switch.
func BenchmarkSetnsRoundTrip(b *testing.B) {
	h := benchHandle(b)
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() {
		runtime.LockOSThread()
		// On a failed restore the thread stays locked and dies with this
		// goroutine, so no other goroutine ever runs in the wrong namespace.
		for range b.N {
			if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
			if err := unix.Setns(homeFD, unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDoSetns: Handle.Do with an empty function, i.e. a goroutine, a
// locked thread, two setns calls and a channel round trip.
func BenchmarkDoSetns(b *testing.B) {
	h := benchHandle(b)
	for b.Loop() {
		if err := h.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAcceptAndClose serves ln by closing every accepted connection.
func benchAcceptAndClose(b *testing.B, ln *net.TCPListener) {
	done := make(chan struct{})
	b.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// benchDial dials ln's address through h until the benchmark ends. The
// server closes first, so TIME_WAIT stays on its side and the client's
// ports are free again at once.
func benchDial(b *testing.B, h *Handle) {
	ln, err := h.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	benchAcceptAndClose(b, ln)
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	one := make([]byte, 1)
	for b.Loop() {
		c, err := h.Dial(ctx, addr, DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		c.Read(one) // EOF once the server closed
		c.Close()
	}
}

// BenchmarkDialDefault: Handle.Dial in the daemon's own namespace, the
// baseline for BenchmarkDialInNamespace.
func BenchmarkDialDefault(b *testing.B) {
	testns.RequireRoot(b)
	h, err := OpenDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	benchDial(b, h)
}

// BenchmarkDialInNamespace: connect to a listener inside a namespace from a
// socket made there (Handle.Dial: socket(2) inside, connect on Go's poller).
func BenchmarkDialInNamespace(b *testing.B) {
	benchDial(b, benchHandle(b))
}
