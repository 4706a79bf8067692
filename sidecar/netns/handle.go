package netns

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned by a Handle whose namespace was closed, deleted or replaced.
	ErrClosed = errors.New("nsproxy: namespace handle closed")
	// ErrNotNamespace is returned when a path is not a network namespace file (yet).
	ErrNotNamespace = errors.New("nsproxy: not a network namespace")
)

// homeFD is the namespace the process started in: every thread returns to
// it. It is opened in init, on the main thread before main runs and before
// this package has moved any thread. "/proc/self/ns/net" would be wrong
// later: it names the main thread's namespace, and the main thread may be
// the one this package has just moved.
var homeFD, homeErr = openHome()

func openHome() (int, error) {
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open own network namespace: %w", err)
	}
	return fd, nil
}

// Identity names a namespace while its fd is held. Inode numbers are reused
// once a namespace is freed, so compare identities only while holding a handle.
type Identity struct {
	Dev    uint64
	Ino    uint64
	Cookie uint64 // SO_NETNS_COOKIE; 0 where the kernel lacks it
}

func (id Identity) String() string {
	return fmt.Sprintf("net:[%d] dev=%d cookie=%d", id.Ino, id.Dev, id.Cookie)
}

// Handle is an open network namespace. Its Context is cancelled when the
// handle is closed, so that everything created inside can be torn down with it.
type Handle struct {
	name   string
	path   string
	id     Identity
	isHome bool
	ctx    context.Context
	cancel context.CancelFunc
	// cookie fills id.Cookie at the first Identity: reading it takes a
	// socket inside the namespace (a thread's setns there and back), which
	// thousands of containers' handles opened at a restart, most of which
	// never need it (their host ports listen in the default namespace),
	// would each pay up front. A read that failed (no fd left, say) is
	// tried again at the next Identity: a handle never keeps a cookie of 0
	// that another handle of the namespace does not have.
	cookieMu   sync.Mutex
	cookieRead bool
	mu         sync.RWMutex // held shared while fd is in use, exclusively to close it
	fd         int
	closed     bool
}

// Name is the registry name ("" for the default namespace).
func (h *Handle) Name() string { return h.name }

// Path is the file the handle was opened from.
func (h *Handle) Path() string { return h.path }

// Identity is the namespace's identity, valid while the handle is open.
// The cookie is read at the first call (0 if the handle was closed by
// then, or the kernel lacks SO_NETNS_COOKIE); a read that failed is tried
// again at the next call, so the cookie may go from 0 to its value once:
// keys that must never change use FileIdentity.
// Callers must not hold the handle in use (inside Do).
func (h *Handle) Identity() Identity {
	h.cookieMu.Lock()
	defer h.cookieMu.Unlock()
	if !h.cookieRead {
		h.mu.RLock()
		if !h.closed && h.do(h.readCookie) == nil {
			h.cookieRead = true
		}
		h.mu.RUnlock()
	}
	return h.id
}

// FileIdentity is the namespace's device and inode, without the cookie: it
// costs nothing and never changes for a handle, where Identity's cookie is
// 0 until its first read succeeds. While the handle is open its namespace
// lives, so no other namespace can have this inode: a key for maps of the
// namespaces in use (the engine's own listeners), and what logs print.
func (h *Handle) FileIdentity() Identity { return Identity{Dev: h.id.Dev, Ino: h.id.Ino} }

// readCookie sets id.Cookie from a socket made in the calling thread's
// namespace (h's, inside do).
func (h *Handle) readCookie() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if c, err := unix.GetsockoptUint64(s, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err == nil {
		h.id.Cookie = c
	}
	return nil
}

// IsDefault reports whether this is the namespace the daemon started in.
func (h *Handle) IsDefault() bool { return h.isHome }

// Context is done once the handle is closed.
func (h *Handle) Context() context.Context { return h.ctx }

// Label is the name used in logs and metrics: the name, or "default".
func (h *Handle) Label() string {
	if h.isHome {
		return "default"
	}
	return h.name
}

// OpenDefault opens the namespace the process started in.
func OpenDefault() (*Handle, error) {
	if homeErr != nil {
		return nil, homeErr
	}
	fd, err := unix.FcntlInt(uintptr(homeFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup own network namespace: %w", err)
	}
	return newHandle(fd, "/proc/thread-self/ns/net", "", true)
}

// OpenPath opens the namespace file at path and names it name.
func OpenPath(path, name string) (*Handle, error) {
	if homeErr != nil {
		return nil, homeErr
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", path, err)
	}
	return newHandle(fd, path, name, false)
}

// newHandle takes ownership of fd.
func newHandle(fd int, path, name string, isHome bool) (*Handle, error) {
	typed, err := checkFDType(fd, path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat namespace %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handle{name: name, path: path, fd: fd, ctx: ctx, cancel: cancel, isHome: isHome,
		id: Identity{Dev: st.Dev, Ino: st.Ino}}
	if typed && !isHome {
		return h, nil // the cookie comes at the first Identity
	}
	// The default namespace's cookie costs no setns. On a kernel without
	// NS_GET_NSTYPE, a namespace fd of another type (e.g. a mount
	// namespace file) fails here rather than at first use.
	cerr := h.do(h.readCookie)
	h.cookieRead = cerr == nil
	if cerr != nil {
		h.Close()
		return nil, fmt.Errorf("enter namespace %s: %w", path, cerr)
	}
	return h, nil
}

// Stale reports whether the file the handle came from no longer names the
// same namespace (deleted, unmounted or recreated).
func (h *Handle) Stale() bool {
	if h.isHome {
		return false
	}
	id, err := statIdentity(h.path)
	return err != nil || id.Dev != h.id.Dev || id.Ino != h.id.Ino
}

// StatIdentity is the identity (device and inode, no cookie) of the
// namespace at path, as a handle opened from it would have, without
// opening it. Like every identity, compare it only while the namespace is
// held (an attachment's container holds its own).
func StatIdentity(path string) (Identity, error) { return statIdentity(path) }

// statfs is unix.Statfs; tests count the calls through it.
var statfs = unix.Statfs

// statIdentity returns the identity of the namespace mounted at path.
func statIdentity(path string) (Identity, error) {
	var sfs unix.Statfs_t
	if err := statfs(path, &sfs); err != nil {
		return Identity{}, err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return Identity{}, ErrNotNamespace
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Identity{}, err
	}
	return Identity{Dev: st.Dev, Ino: st.Ino}, nil
}

// Close cancels the handle's context and closes the fd.
// It waits for sockets being created right now. Closing twice is harmless.
func (h *Handle) Close() error {
	h.cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	return unix.Close(h.fd)
}

// Closed reports whether Close was called.
func (h *Handle) Closed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// Do runs fn on an OS thread that is inside the namespace, never on the
// caller's thread. fn must not start goroutines that expect to inherit the
// namespace, nor block for long: it holds a thread.
func (h *Handle) Do(fn func() error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return ErrClosed
	}
	return h.do(fn)
}

// do is what containernetworking/plugins' ns.NetNS.Do does, kept here
// because it does less per call: the way home is homeFD, opened once,
// where ns.Do opens the thread's namespace file on every switch; and the
// handle's lock keeps fd open for the switch while Close waits.
func (h *Handle) do(fn func() error) error {
	if h.isHome {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(homeFD, unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the wrong namespace: leave it locked
			// so that it exits with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("setns back to default namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Socket creates a socket inside the namespace. The caller owns the fd;
// bind, connect and every other call on it work from any thread.
func (h *Handle) Socket(domain, typ, proto int) (int, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return -1, ErrClosed
	}
	if h.isHome {
		return unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
	}
	fd := -1
	err := h.do(func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	return fd, err
}

// String describes the handle for logs.
func (h *Handle) String() string {
	return fmt.Sprintf("%s (%s, %s)", h.Label(), h.path, h.FileIdentity())
}

var _ fmt.Stringer = (*Handle)(nil)
