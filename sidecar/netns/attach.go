package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nsproxy/nsproxy/hooks"
	"golang.org/x/sys/unix"
)

// ErrExists: the name is already taken in the netns directory.
var ErrExists = errors.New("nsproxy: a namespace of that name exists")

// Attach gives the network namespace of pid a name in dir, as
// `ip netns attach NAME PID` does: it bind-mounts /proc/PID/ns/net on
// dir/NAME. The namespace then outlives the process until Detach.
func Attach(dir, name string, pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("attach %q: invalid pid %d", name, pid)
	}
	src := fmt.Sprintf("/proc/%d/ns/net", pid)
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("attach %q: %s: %w", name, src, err)
	}
	defer unix.Close(fd)
	return attachFD(dir, name, fd, src)
}

// AttachFD names the namespace behind an open fd in dir. Opening
// /proc/PID/ns/net first and mounting the fd is race-free: the pid may
// exit and be reused, the fd still names the namespace that was opened.
// An fd of another namespace type is refused.
func AttachFD(dir, name string, fd int) (string, error) {
	return attachFD(dir, name, fd, fmt.Sprintf("fd %d", fd))
}

func attachFD(dir, name string, fd int, what string) (string, error) {
	if err := checkFD(fd, what); err != nil {
		return "", fmt.Errorf("attach %q: %w", name, err)
	}
	return attach(dir, name, fmt.Sprintf("/proc/self/fd/%d", fd))
}

func attach(dir, name, src string) (string, error) {
	if !hooks.ValidName(name) {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	target := filepath.Join(dir, name)
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("attach %q: %w (%s)", name, ErrExists, target)
		}
		return "", fmt.Errorf("attach %q: %w", name, err)
	}
	f.Close()
	if err := unix.Mount(src, target, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(target)
		return "", fmt.Errorf("attach %q: bind mount %s: %w", name, src, err)
	}
	return target, nil
}

// Detach undoes Attach (or `ip netns add`): unmount dir/NAME and remove it.
func Detach(dir, name string) error {
	if !hooks.ValidName(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	target := filepath.Join(dir, name)
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("detach %q: %w", name, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("detach %q: %w", name, err)
	}
	return nil
}
