package sdnotify

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notification states the daemon sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// ErrBadSocket: $NOTIFY_SOCKET is neither a path nor an abstract name.
var ErrBadSocket = errors.New("sdnotify: NOTIFY_SOCKET must be an absolute path or start with @")

// Notifier sends notifications to one socket. The zero value (and a nil
// *Notifier) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a notifier for $NOTIFY_SOCKET; without it, a notifier
// that sends nothing. A malformed value is an error.
func FromEnv() (*Notifier, error) {
	return New(os.Getenv("NOTIFY_SOCKET"))
}

// New returns a notifier for socket: an absolute path, or "@name" for an
// abstract socket; "" sends nothing.
func New(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return &Notifier{}, nil
	case strings.HasPrefix(socket, "@") && len(socket) > 1:
		// The kernel's abstract names start with a NUL byte; Go writes it
		// for a leading '@'.
		return &Notifier{addr: &net.UnixAddr{Net: "unixgram", Name: socket}}, nil
	case strings.HasPrefix(socket, "/"):
		return &Notifier{addr: &net.UnixAddr{Net: "unixgram", Name: socket}}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrBadSocket, socket)
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends the given states, one per line, in one datagram.
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() || len(states) == 0 {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// MainPID is the state that names pid as the service's main process: a
// successor started by the old daemon sends it with READY=1.
func MainPID(pid int) string { return "MAINPID=" + strconv.Itoa(pid) }

// ReloadingNow is RELOADING=1 with the MONOTONIC_USEC that
// Type=notify-reload asks for.
func ReloadingNow() []string {
	return []string{Reloading, "MONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)}
}

// WatchdogInterval is how often to send WATCHDOG=1: half of $WATCHDOG_USEC,
// when the watchdog is meant for this process ($WATCHDOG_PID unset or
// ours). 0: no watchdog.
func WatchdogInterval() (time.Duration, error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("sdnotify: WATCHDOG_PID %q is not a pid", pid)
		}
		if p != self {
			return 0, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC %q is not a positive number of microseconds", usec)
	}
	if u > uint64(math.MaxInt64/int64(time.Microsecond)) {
		// As a Duration it would overflow into a negative period.
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC %q is too large (over 292 years)", usec)
	}
	return time.Duration(u) * time.Microsecond / 2, nil
}

// RunWatchdog sends WATCHDOG=1 every interval until stop is closed.
func (n *Notifier) RunWatchdog(stop <-chan struct{}, every time.Duration) {
	if !n.Enabled() || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n.Notify(Watchdog)
		}
	}
}
