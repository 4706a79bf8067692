// Package dirwatch reports that a directory changed, through inotify: one
// coalescing channel, no event details. It is the one inotify loop of the
// daemon, shared by the netns directory's watcher (sidecar/netns) and the
// --manifests directory's (sidecar). Callers keep a periodic resync: inotify
// can be unavailable, and a change can happen before the watch starts.
package dirwatch

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Watch reports changes of dir's entries matching mask (unix.IN_* bits)
// over the returned channel: a send means "something changed since the
// last receive" (a buffer of one, so a burst is one wake-up). The channel
// is closed when the watch ends (stop, or the directory is gone). stop
// ends it and waits for its goroutine.
func Watch(dir string, mask uint32) (events <-chan struct{}, stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // nonblocking: reads park on the poller, Close wakes them
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { f.Close(); <-done }, nil
}
