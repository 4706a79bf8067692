package proxy

// Micro-benchmarks of the engine's hot paths (issue 6), in ns mode: the
// listener lives in namespace A, the server in namespace B, the engine in
// the test's own namespace. They need root and skip otherwise.
//
//	go test -run '^$' -bench . -benchtime 2s ./sidecar/proxy/
//
// The client and the servers run in the same process, so their CPU is
// counted too: compare these numbers with each other (before/after a
// change), not with the proxy-only CPU figures of bench/run.sh.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
	"golang.org/x/sys/unix"
)

// benchRig is an engine between a client namespace and a server namespace.
type benchRig struct {
	reg            *netns.Registry
	e              *Engine
	clientNS       *netns.Handle // to dial the listener from inside A
	serverNS       *netns.Handle // to run servers inside B
	nsA, nsB       string
	engineAddrPort netip.AddrPort
}

func newBenchRig(b *testing.B, level slog.Level) *benchRig {
	b.Helper()
	a, bb := testns.New(b, "A"), testns.New(b, "B")
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	reg, err := netns.NewRegistry("", log)
	if err != nil {
		b.Fatal(err)
	}
	if err := reg.SetNames([]string{a, bb}); err != nil {
		b.Fatal(err)
	}
	r := &benchRig{reg: reg, e: New(reg, log), nsA: a, nsB: bb}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.e.Shutdown(ctx)
		reg.Close()
	})
	open := func(name string) *netns.Handle {
		h, err := netns.OpenPath(filepath.Join(netns.DefaultDir, name), name)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	r.clientNS, r.serverNS = open(a), open(bb)
	return r
}

// benchServe runs handle on every connection to a listener at 127.0.0.1
// inside B and returns the listener's address.
func (r *benchRig) benchServe(b *testing.B, handle func(*net.TCPConn)) netip.AddrPort {
	b.Helper()
	ln, err := r.serverNS.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// benchRoute makes the engine listen inside A (on a port picked there) and
// send every connection to server in B, and waits until it listens.
func (r *benchRig) benchRoute(b *testing.B, server netip.AddrPort) {
	b.Helper()
	// A port that is free inside A: bind one, note it, close it.
	probe, err := r.clientNS.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).AddrPort().Port()
	probe.Close()
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Namespace: r.nsA}
	s := srv("s1", server.String(), r.nsB)
	if err := r.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{s}})); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls := r.e.Listeners()
		if len(ls) == 1 && ls[0].Listening {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("listener not up: %+v", ls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.engineAddrPort = bind.Addr
}

// benchInA runs fn on a thread inside A, so that the client's sockets are
// plain net.Dial sockets made there (no socket-thread hand-off on the
// client side).
func (r *benchRig) benchInA(fn func() error) error { return r.clientNS.Do(fn) }

// BenchmarkAcceptDialClose: one whole connection through the engine per
// iteration: the client dials the listener in A, the engine accepts and
// dials the server in B, one byte goes there and back, the client closes.
// log=info includes writing the per-connection log line (to io.Discard).
// client=locked dials from a goroutine locked to a thread inside A (no
// setns per dial); client=unlocked from an ordinary goroutine
// (netns.Handle.Dial: the thread enters A for socket(2) only), as the
// daemon's own network waits are. wait=park runs the loops parked in the
// runtime's poller instead of blocking in epoll_wait (evloop.wait).
func BenchmarkAcceptDialClose(b *testing.B) {
	for _, bc := range []struct {
		name     string
		level    slog.Level
		block    bool
		unlocked bool
	}{
		{"log=warn", slog.LevelWarn, true, false},
		{"log=info", slog.LevelInfo, true, false},
		{"log=warn/client=unlocked", slog.LevelWarn, true, true},
		{"log=warn/wait=park", slog.LevelWarn, false, false},
		{"log=warn/wait=park/client=unlocked", slog.LevelWarn, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			defer func(old bool) { loopWaitBlocks = old }(loopWaitBlocks)
			loopWaitBlocks = bc.block // read when the engine's loops start
			r := newBenchRig(b, bc.level)
			addr := r.benchServe(b, func(c *net.TCPConn) { io.Copy(c, c) })
			r.benchRoute(b, addr)
			target := net.TCPAddrFromAddrPort(r.engineAddrPort)
			dial := func() (*net.TCPConn, error) { return net.DialTCP("tcp", nil, target) }
			run := r.benchInA
			if bc.unlocked {
				dial = func() (*net.TCPConn, error) {
					return r.clientNS.Dial(context.Background(), r.engineAddrPort, netns.DialOptions{})
				}
				run = func(fn func() error) error { return fn() }
			}
			b.ResetTimer()
			err := run(func() error {
				one := []byte{'x'}
				for range b.N {
					c, err := dial()
					if err != nil {
						return err
					}
					if _, err := c.Write(one); err != nil {
						return err
					}
					if _, err := io.ReadFull(c, one); err != nil {
						return err
					}
					c.Close()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			// Let the sessions of the last iterations end before cleanup.
			deadline := time.Now().Add(3 * time.Second)
			for r.e.Sessions() > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// BenchmarkSpliceCopy: bulk transfer client → engine → server over one
// connection; the server discards and finally reports the byte count.
func BenchmarkSpliceCopy(b *testing.B) {
	const chunk = 256 << 10
	r := newBenchRig(b, slog.LevelWarn)
	addr := r.benchServe(b, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(n))
		c.Write(buf[:])
	})
	r.benchRoute(b, addr)
	target := net.TCPAddrFromAddrPort(r.engineAddrPort)
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	// The timing covers the data still in flight at the end, too.
	err := r.benchInA(func() error {
		c, err := net.DialTCP("tcp", nil, target)
		if err != nil {
			return err
		}
		defer c.Close()
		var sent int64
		for range b.N {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				return err
			}
		}
		c.CloseWrite()
		var got [8]byte
		if _, err := io.ReadFull(c, got[:]); err != nil {
			return err
		}
		if n := int64(binary.BigEndian.Uint64(got[:])); n != sent {
			return fmt.Errorf("server received %d bytes, sent %d", n, sent)
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIdleSessions holds 1,000 idle connections through the engine and
// reports what each costs the process: goroutines, stack and heap bytes
// (runtime.MemStats after GC) and file descriptors. The client and server
// ends live in this process too but hold no goroutine: their share is two
// *net.TCPConn in the heap figure and two fds in the fd figure.
func BenchmarkIdleSessions(b *testing.B) {
	const n = 1000
	r := newBenchRig(b, slog.LevelWarn)
	ln, err := r.serverNS.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []*net.TCPConn
		done     = make(chan struct{})
	)
	b.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	})
	go func() { // one goroutine for all: no per-connection stacks on this side
		defer close(done)
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	r.benchRoute(b, ln.Addr().(*net.TCPAddr).AddrPort())
	target := net.TCPAddrFromAddrPort(r.engineAddrPort)
	countFDs := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	// One measurement per call whatever b.N is (-benchtime 100x must not
	// mean 100,000 connections); the framework calls this at least once.
	for range min(b.N, 1) {
		var clients []*net.TCPConn
		var m0, m1 runtime.MemStats
		// Empty sync.Pool's pipes of the previous iteration (their
		// finalizers close the fds), so that every pipe is counted.
		runtime.GC()
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&m0)
		g0, fd0 := runtime.NumGoroutine(), countFDs()
		err := r.benchInA(func() error {
			for range n {
				c, err := net.DialTCP("tcp", nil, target)
				if err != nil {
					return err
				}
				clients = append(clients, c)
				if _, err := c.Write([]byte{'i'}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := len(accepted)
			mu.Unlock()
			if got >= n && r.e.Sessions() >= n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d accepted, %d sessions; want %d", got, r.e.Sessions(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // every pump blocked in splice
		runtime.GC()
		runtime.ReadMemStats(&m1)
		g1, fd1 := runtime.NumGoroutine(), countFDs()
		b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
		b.ReportMetric(float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n, "stack-B/conn")
		b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/n, "heap-B/conn")
		b.ReportMetric(float64(fd1-fd0)/n, "fds/conn")
		for _, c := range clients {
			c.Close()
		}
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		accepted = accepted[:0]
		mu.Unlock()
		for deadline := time.Now().Add(10 * time.Second); r.e.Sessions() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// BenchmarkAcceptProxyStar: BenchmarkAcceptDialClose through an
// accept-proxy listener whose server takes its address from the header
// ("server * namespace B send-proxy-v2"): the path that checks for loops
// (issue 9). The client sends a v2 header naming the server in B; the
// server reads the engine's v2 header, then echoes.
func BenchmarkAcceptProxyStar(b *testing.B) {
	r := newBenchRig(b, slog.LevelWarn)
	addr := r.benchServe(b, func(c *net.TCPConn) {
		if _, err := proxyproto.ReadHeader(c, proxyproto.ReadOptions{}); err != nil {
			return
		}
		io.Copy(c, c)
	})
	probe, err := r.clientNS.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).AddrPort().Port()
	probe.Close()
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Namespace: r.nsA, AcceptProxy: true}
	star := ServerSpec{Name: "star", PortMode: PortFromClient, Namespace: r.nsB, Weight: 1, SendProxy: 2}
	if err := r.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{star}})); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ls := r.e.Listeners(); len(ls) == 1 && ls[0].Listening {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("listener not up")
		}
	}
	target := net.TCPAddrFromAddrPort(bind.Addr)
	msg := append(proxyproto.AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:40000"), addr, ""), 'x')
	b.ResetTimer()
	err = r.benchInA(func() error {
		one := []byte{0}
		for range b.N {
			c, err := net.DialTCP("tcp", nil, target)
			if err != nil {
				return err
			}
			if _, err := c.Write(msg); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, one); err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	deadline := time.Now().Add(3 * time.Second)
	for r.e.Sessions() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkLoopCheck: the per-connection cost of the loop guard for a
// server address taken from the client, with 1,000 listeners in the set:
// destinations that are not ours, on a port we do not listen on (the
// common case) and on one we do, and one that is ours.
func BenchmarkLoopCheck(b *testing.B) {
	testns.RequireRoot(b)
	h, err := netns.OpenDefault()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var o ownListeners
	for i := range 1000 {
		o.add(listenKeyOf(h, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 8080)))
	}
	local := func(netip.Addr) bool { return false }
	for _, c := range []struct{ name, dst string }{
		{"other port", "10.9.9.9:443"}, {"same port", "10.9.9.9:8080"}, {"hit", "10.1.3.3:8080"}} {
		b.Run(c.name, func(b *testing.B) {
			dst := netip.MustParseAddrPort(c.dst)
			for range b.N {
				o.isOwn(h, dst, local)
			}
		})
	}
}

// BenchmarkIdleConnectionBytes (issue 14) reports the heap an idle
// connection holds in the engine alone: 2,000 connections through the
// engine (listener in A, server in B), both ends raw blocking fds of this
// process that hold nothing in the Go heap, runtime.MemStats.HeapAlloc
// after GC before and after, divided by 2,000. A figure for the report
// (the bench's RSS per idle connection adds the kernel's and the
// allocator's share), not a timed assertion.
//
//	go test -run '^$' -bench IdleConnectionBytes -benchtime 1x ./sidecar/proxy/
//
// NSPROXY_IDLE_HEAP_PROFILE=FILE (with -memprofilerate 1) writes a heap
// profile while the connections are open.
func BenchmarkIdleConnectionBytes(b *testing.B) {
	const n = 2000
	r := newBenchRig(b, slog.LevelWarn)
	lfd, err := r.serverNS.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		b.Fatal(err)
	}
	sa, _ := unix.Getsockname(lfd)
	server := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	accepted := make([]int, 0, n)
	acceptedN := make(chan int, 1)
	go func() { // blocking accepts on a thread of their own; one greeting byte each
		for len(accepted) < n {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err != nil {
				break
			}
			unix.Write(fd, []byte{'g'})
			accepted = append(accepted, fd)
		}
		acceptedN <- len(accepted)
	}()
	r.benchRoute(b, server)
	clients := make([]int, 0, n)
	b.Cleanup(func() {
		for _, fd := range clients {
			unix.Close(fd)
		}
		unix.Shutdown(lfd, unix.SHUT_RDWR)
		unix.Close(lfd)
		for _, fd := range accepted {
			unix.Close(fd)
		}
	})
	dst := &unix.SockaddrInet4{Addr: r.engineAddrPort.Addr().As4(), Port: int(r.engineAddrPort.Port())}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range min(b.N, 1) { // one measurement whatever b.N is
		var g [1]byte
		for range n {
			fd, err := r.clientNS.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, fd)
			if err := unix.Connect(fd, dst); err != nil {
				b.Fatal(err)
			}
			if _, err := unix.Read(fd, g[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := <-acceptedN; got != n {
		b.Fatalf("server accepted %d, want %d", got, n)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if s := r.e.Sessions(); s != n {
		b.Fatalf("%d sessions, want %d", s, n)
	}
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n, "engine-heap-B/conn")
	if p := os.Getenv("NSPROXY_IDLE_HEAP_PROFILE"); p != "" { // what holds it: go tool pprof -sample_index=inuse_space
		if f, err := os.Create(p); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}
