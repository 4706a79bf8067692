package cniplugin

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

const (
	nsfsMagic   = 0x6e736673 // NSFS_MAGIC: namespace files (/run/netns/X, /proc/PID/ns/net)
	nsGetNSType = 0xb703     // NS_GET_NSTYPE: _IO(0xb7, 0x3), Linux >= 4.11
)

// checkNetns verifies that path is a network namespace file, and not the
// plugin's own namespace unless allowOwn (CNI_NETNS_OVERRIDE). skel makes
// the second check only after ADD printed its result, too late.
func checkNetns(path string, allowOwn bool) error {
	if path == "" {
		return errors.New("CNI_NETNS is empty")
	}
	// O_NONBLOCK: a FIFO at that path must not hang the plugin.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	defer f.Close()
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &fs); err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	if fs.Type != nsfsMagic {
		return fmt.Errorf("CNI_NETNS %s is not a namespace file (file system type %#x, want nsfs)", path, fs.Type)
	}
	typ, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), nsGetNSType, 0)
	switch {
	case errno == syscall.ENOTTY || errno == syscall.EINVAL:
		// An old kernel: nsfs is all we can tell.
	case errno != 0:
		return fmt.Errorf("CNI_NETNS %s: %w", path, errno)
	case typ != syscall.CLONE_NEWNET:
		return fmt.Errorf("CNI_NETNS %s is a namespace, but not a network namespace", path)
	}
	if allowOwn {
		return nil
	}
	var st, own syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	if err := syscall.Stat("/proc/self/ns/net", &own); err != nil {
		return nil // cannot tell; skel checks again
	}
	if st.Dev == own.Dev && st.Ino == own.Ino {
		return fmt.Errorf("CNI_NETNS %s is the plugin's own network namespace, not a container's", path)
	}
	return nil
}
