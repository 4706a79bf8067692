package netns

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/dirwatch"
)

// watchDir watches dir's entries until the watcher is stopped. It creates
// dir if needed (as `ip netns add` would) so that it can be watched from
// the start. A moved directory ends the watch (IN_MOVE_SELF), as a deleted
// one does: the registry then watches the directory under its name anew.
func watchDir(dir string) (*dirwatch.Watcher, error) {
	if !exists(dir) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return dirwatch.Watch(dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|
		unix.IN_MOVED_TO|unix.IN_ATTRIB|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF)
}
