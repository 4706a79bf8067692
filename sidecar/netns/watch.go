package netns

import (
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/dirwatch"
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
	events, stop, err := dirwatch.Watch(dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|
		unix.IN_MOVED_TO|unix.IN_ATTRIB|unix.IN_DELETE_SELF)
	if err != nil {
		log.Warn("cannot watch netns directory; relying on periodic resync", "dir", dir, "err", err)
		return nil, func() {}
	}
	return events, stop
}
