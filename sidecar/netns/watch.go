package netns

import (
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// watchDir reports changes in dir over the returned channel until stop is
// called. It creates dir if needed (as `ip netns add` would) so that it can
// be watched from the start. On failure it logs and returns a nil channel:
// the periodic resync still works.
func watchDir(dir string, log *slog.Logger) (<-chan struct{}, func()) {
	if !exists(dir) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("cannot create netns directory; relying on periodic resync", "dir", dir, "err", err)
			return nil, func() {}
		}
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		log.Warn("inotify unavailable; relying on periodic resync", "err", err)
		return nil, func() {}
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|
		unix.IN_MOVED_TO|unix.IN_ATTRIB|unix.IN_DELETE_SELF); err != nil {
		unix.Close(fd)
		log.Warn("cannot watch netns directory; relying on periodic resync", "dir", dir, "err", err)
		return nil, func() {}
	}
	f := os.NewFile(uintptr(fd), "inotify") // nonblocking: reads park on the poller
	events := make(chan struct{}, 1)
	go func() {
		defer close(events)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case events <- struct{}{}:
			default:
			}
		}
	}()
	return events, func() { f.Close() }
}
