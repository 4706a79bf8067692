package netns

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// nsTypeNames are the namespace types NS_GET_NSTYPE reports, by the names
// /proc/PID/ns uses.
var nsTypeNames = map[int]string{
	unix.CLONE_NEWNET:    "net",
	unix.CLONE_NEWNS:     "mnt",
	unix.CLONE_NEWUTS:    "uts",
	unix.CLONE_NEWIPC:    "ipc",
	unix.CLONE_NEWPID:    "pid",
	unix.CLONE_NEWUSER:   "user",
	unix.CLONE_NEWCGROUP: "cgroup",
	unix.CLONE_NEWTIME:   "time",
}

// passInstead ends every refusal: what a caller should give instead.
const passInstead = "pass a network namespace: /proc/PID/ns/net or a file of " + DefaultDir

// notNetnsError is a path that exists but is not a network namespace. It
// matches ErrNotNamespace.
type notNetnsError struct {
	path  string
	found string // "a mnt namespace", "not a namespace file (file system type 0x...)"
}

func (e *notNetnsError) Error() string {
	return fmt.Sprintf("%s %s, not a network namespace; %s", e.path, e.found, passInstead)
}

func (e *notNetnsError) Unwrap() error { return ErrNotNamespace }

// CheckPath reports whether path is a network namespace file now (an nsfs
// mount such as /var/run/netns/NAME, or /proc/PID/ns/net). A file of
// another namespace type (/proc/PID/ns/mnt) is refused with the type it
// holds: it would open, but setns into it as a network namespace fails.
func CheckPath(path string) error {
	// statfs by path first: a device or FIFO is refused without opening it.
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return &notNetnsError{path: path, found: fmt.Sprintf("is not a namespace file (file system type %#x)", sfs.Type)}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	return checkFD(fd, path)
}

// checkFD is CheckPath on an open fd; path names it in errors.
func checkFD(fd int, path string) error {
	_, err := checkFDType(fd, path)
	return err
}

// checkFDType is checkFD, and whether the kernel told the namespace's
// type (Linux ≥ 4.11) rather than only that it is a namespace file.
func checkFDType(fd int, path string) (typed bool, err error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return false, &notNetnsError{path: path, found: fmt.Sprintf("is not a namespace file (file system type %#x)", sfs.Type)}
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	switch {
	case err == unix.ENOTTY || err == unix.EINVAL:
		return false, nil // Linux < 4.11: nsfs is all we can tell; setns checks the type
	case err != nil:
		return false, fmt.Errorf("%s: NS_GET_NSTYPE: %w", path, err)
	case typ == unix.CLONE_NEWNET:
		return true, nil
	}
	name, ok := nsTypeNames[typ]
	if !ok {
		name = fmt.Sprintf("type %#x", typ)
	}
	article := "a"
	if name == "ipc" {
		article = "an"
	}
	return true, &notNetnsError{path: path, found: "is " + article + " " + name + " namespace"}
}
