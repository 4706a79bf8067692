package netns

import (
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/dirwatch"
)

// watchDir watches dir's entries until the watcher is stopped. It creates
// dir if needed (as `ip netns add` would) so that it can be watched from
// the start. On failure it logs and returns nil: the periodic sweep still
// works.
func watchDir(dir string, log *slog.Logger) *dirwatch.Watcher {
	if !exists(dir) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("cannot create netns directory; relying on periodic resync", "dir", dir, "err", err)
			return nil
		}
	}
	w, err := dirwatch.Watch(dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|
		unix.IN_MOVED_TO|unix.IN_ATTRIB|unix.IN_DELETE_SELF)
	if err != nil {
		log.Warn("cannot watch netns directory; relying on periodic resync", "dir", dir, "err", err)
		return nil
	}
	return w
}
