package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
	"golang.org/x/sys/unix"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func cookieOf(t *testing.T, fd int) uint64 {
	t.Helper()
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		t.Skipf("kernel without SO_NETNS_COOKIE: %v", err)
	}
	return c
}

func TestOpenDefaultIdentity(t *testing.T) {
	testns.RequireRoot(t)
	h, err := OpenDefault()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Not /proc/self: that is the main thread, which may be lent to
	// another test's namespace switch right now.
	var st unix.Stat_t
	runtime.LockOSThread()
	err = unix.Stat("/proc/thread-self/ns/net", &st)
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	if h.Identity().Ino != st.Ino || h.Identity().Dev != st.Dev {
		t.Fatalf("identity %v, stat says ino %d dev %d", h.Identity(), st.Ino, st.Dev)
	}
	if !h.IsDefault() || h.Label() != "default" || h.Stale() {
		t.Fatalf("default handle: IsDefault=%v Label=%q Stale=%v", h.IsDefault(), h.Label(), h.Stale())
	}
}

func TestOpenRejectsNonNamespace(t *testing.T) {
	testns.RequireRoot(t)
	f := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(f, nil, 0o644)
	if _, err := OpenPath(f, "plain"); !errors.Is(err, ErrNotNamespace) {
		t.Fatalf("plain file: got %v, want ErrNotNamespace", err)
	}
	if _, err := OpenPath("/proc/self/ns/mnt", "mnt"); err == nil {
		t.Fatal("a mount namespace file must not open as a network namespace")
	}
	if _, err := OpenPath(filepath.Join(t.TempDir(), "missing"), "m"); err == nil {
		t.Fatal("missing file must fail")
	}
}

// TestListenDialInNamespace proves sockets live in the namespace they were
// created in: a listener on 127.0.0.1 inside A is reachable from a socket
// made inside A, and not from the default namespace, where a decoy holds
// the same address (a decoy rather than "refused": on a busy machine any
// program may hold a port of the default namespace).
func TestListenDialInNamespace(t *testing.T) {
	a := testns.New(t, "A")
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	def, _ := OpenDefault()
	defer def.Close()

	serve := func(ln net.Listener, tag string) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(tag))
			c.Close()
		}
	}
	decoy, err := def.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	go serve(decoy, "from-default")
	addr := decoy.Addr().(*net.TCPAddr).AddrPort()
	ln, err := h.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln, "from-A")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, addr, DialOptions{})
	if err != nil {
		t.Fatalf("dial inside A: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "from-A" {
		t.Fatalf("read %q", b)
	}
	c, err = def.Dial(ctx, addr, DialOptions{})
	if err != nil {
		t.Fatalf("dial in the default namespace: %v", err)
	}
	b, _ = io.ReadAll(c)
	c.Close()
	if string(b) != "from-default" {
		t.Fatalf("dial from the default namespace read %q, want the decoy's from-default", b)
	}
	// The listening socket's namespace cookie is A's.
	raw, _ := ln.SyscallConn()
	raw.Control(func(fd uintptr) {
		if got := cookieOf(t, int(fd)); got != h.Identity().Cookie {
			t.Errorf("listener cookie %d, namespace cookie %d", got, h.Identity().Cookie)
		}
	})
}

func TestDialTimeoutAndCancel(t *testing.T) {
	a := testns.New(t, "T")
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A veth whose peer has no address: ARP for 198.51.100.2 is never
	// answered, so connect hangs until its context ends.
	testns.Run(t, "ip", "-n", a, "link", "add", "nsq0", "type", "veth", "peer", "name", "nsq1")
	testns.Run(t, "ip", "-n", a, "addr", "add", "198.51.100.1/24", "dev", "nsq0")
	testns.Run(t, "ip", "-n", a, "link", "set", "nsq0", "up")
	testns.Run(t, "ip", "-n", a, "link", "set", "nsq1", "up")
	target := netip.MustParseAddrPort("198.51.100.2:80")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = h.Dial(ctx, target, DialOptions{})
	if el := time.Since(start); err == nil || el < 250*time.Millisecond || el > 2*time.Second {
		t.Fatalf("dial with a 300ms deadline: err %v after %v", err, el)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline error: %v", err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, ccancel)
	start = time.Now()
	_, err = h.Dial(cctx, target, DialOptions{})
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("cancelled dial: err %v after %v", err, el)
	}
	_, err = h.Dial(context.Background(), netip.MustParseAddrPort("127.0.0.1:1"), DialOptions{})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial to closed port: %v, want ECONNREFUSED", err)
	}
}

// TestThreadsReturnHome hammers the namespace switch and checks that no
// goroutine ever finds itself on a thread left in another namespace.
func TestThreadsReturnHome(t *testing.T) {
	a := testns.New(t, "H")
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	def, _ := OpenDefault()
	defer def.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 1000)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				fd, err := h.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
				if err != nil {
					errc <- err
					return
				}
				c, _ := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
				unix.Close(fd)
				if c != h.Identity().Cookie {
					errc <- errors.New("socket from Handle.Socket is not in the namespace")
				}
				h.Do(func() error { return nil })
				// The inline dial enters the namespace on the caller's
				// thread: it must leave it, refused or not.
				if c, err := h.Dial(context.Background(), netip.MustParseAddrPort("127.0.0.1:1"), DialOptions{}); err == nil {
					c.Close()
				}
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					errc <- err
					return
				}
				c, _ := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
				unix.Close(fd)
				if c != def.Identity().Cookie {
					errc <- fmt.Errorf("a goroutine ran on a thread left in another namespace: cookie %d, default %d, ns %d", c, def.Identity().Cookie, h.Identity().Cookie)
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestHandleCloseStopsThread(t *testing.T) {
	a := testns.New(t, "C")
	before := runtime.NumGoroutine()
	h, err := OpenPath(filepath.Join(DefaultDir, a), a)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := h.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	h.Close()
	if h.Context().Err() == nil {
		t.Fatal("context not cancelled by Close")
	}
	if _, err := h.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("socket after close: %v", err)
	}
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRegistryLifecycle(t *testing.T) {
	testns.RequireRoot(t)
	name := testns.Name("R")
	t.Cleanup(func() { testns.Delete(name) })
	r, err := NewRegistry("", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetNames([]string{name, "../etc"}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("SetNames with a path: %v, want ErrInvalidName", err)
	}
	if _, err := r.Get(name); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("missing namespace: %v, want ErrUnavailable", err)
	}
	if _, err := r.Get("other"); !errors.Is(err, ErrUnknownNamespace) {
		t.Fatalf("unknown name: %v", err)
	}
	if !r.Known(name) || r.Known("other") {
		t.Fatal("Known is wrong")
	}

	got := make(chan *Handle, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, _ := r.Wait(ctx, name)
		got <- h
	}()
	testns.Run(t, "ip", "netns", "add", name)
	r.Resync()
	h1 := <-got
	if h1 == nil {
		t.Fatal("Wait did not return the namespace once it appeared")
	}
	if again, _ := r.Get(name); again != h1 {
		t.Fatal("Get returned another handle")
	}
	r.Resync()
	if again, _ := r.Get(name); again != h1 || h1.Closed() {
		t.Fatal("a resync without change must keep the handle")
	}

	// Recreate under the same name: the old handle is closed, a new one published.
	testns.Run(t, "ip", "netns", "del", name)
	testns.Run(t, "ip", "netns", "add", name)
	r.Resync()
	if h1.Context().Err() == nil {
		t.Fatal("old handle survived recreation")
	}
	h2, err := r.Get(name)
	if err != nil || h2 == h1 || h2.Identity() == h1.Identity() {
		t.Fatalf("after recreate: %v, same=%v", err, h2 == h1)
	}

	testns.Run(t, "ip", "netns", "del", name)
	r.Resync()
	if h2.Context().Err() == nil {
		t.Fatal("handle survived deletion")
	}
	if _, err := r.Get(name); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("deleted namespace: %v", err)
	}

	// Dropping a name closes its handle.
	testns.Run(t, "ip", "netns", "add", name)
	r.Resync()
	h3, _ := r.Get(name)
	r.SetNames(nil)
	if h3 == nil || h3.Context().Err() == nil {
		t.Fatal("SetNames(nil) kept the handle open")
	}
}

func TestRegistryWatch(t *testing.T) {
	testns.RequireRoot(t)
	name := testns.Name("W")
	t.Cleanup(func() { testns.Delete(name) })
	r, err := NewRegistry("", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetNames([]string{name})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx, time.Hour); close(done) }() // only inotify can notice in time
	defer func() { cancel(); <-done }()
	waitWatchStarted(t, r) // a namespace added before the watch makes no event
	testns.Run(t, "ip", "netns", "add", name)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	h, err := r.Wait(wctx, name)
	if err != nil {
		t.Fatalf("watcher did not notice the new namespace: %v", err)
	}
	testns.Run(t, "ip", "netns", "del", name)
	select {
	case <-h.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not notice the deletion")
	}
}

// TestCookieAtFirstIdentity: opening a namespace does not enter it; its
// cookie is read at the first Identity, is the one of a socket made
// inside, and stays the same. A handle closed before anyone asked has no
// cookie (it was read at open before: a setns per namespace at every
// restart, for thousands of containers whose cookie nobody needs).
func TestCookieAtFirstIdentity(t *testing.T) {
	testns.RequireRoot(t)
	ns := testns.New(t, "K")
	path := filepath.Join(DefaultDir, ns)
	h, err := OpenPath(path, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fd, err := h.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := cookieOf(t, fd)
	unix.Close(fd)
	if got := h.Identity(); got.Cookie != want || h.Identity() != got {
		t.Fatalf("identity %v then %v, want cookie %d both times", got, h.Identity(), want)
	}

	unasked, err := OpenPath(path, ns)
	if err != nil {
		t.Fatal(err)
	}
	unasked.Close()
	if id := unasked.Identity(); id.Cookie != 0 || id.Ino != h.Identity().Ino {
		t.Fatalf("handle closed before its first Identity: %v, want the file's identity and no cookie", id)
	}
}
