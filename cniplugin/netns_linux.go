package cniplugin

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// checkNetns verifies that path is a network namespace file, and not the
// plugin's own namespace unless allowOwn (CNI_NETNS_OVERRIDE). skel makes
// the second check only after ADD printed its result, too late.
func checkNetns(path string, allowOwn bool) error {
	if path == "" {
		return errors.New("CNI_NETNS is empty")
	}
	// O_NONBLOCK: a FIFO at that path must not hang the plugin.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	defer f.Close()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("CNI_NETNS %s is not a namespace file (file system type %#x, want nsfs)", path, fs.Type)
	}
	typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	switch {
	case err == unix.ENOTTY || err == unix.EINVAL:
		// Linux < 4.11: nsfs is all we can tell.
	case err != nil:
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	case typ != unix.CLONE_NEWNET:
		return fmt.Errorf("CNI_NETNS %s is a namespace, but not a network namespace", path)
	}
	if allowOwn {
		return nil
	}
	var st, own unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("CNI_NETNS %s: %w", path, err)
	}
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		return nil // cannot tell; skel checks again
	}
	if st.Dev == own.Dev && st.Ino == own.Ino {
		return fmt.Errorf("CNI_NETNS %s is the plugin's own network namespace, not a container's", path)
	}
	return nil
}
