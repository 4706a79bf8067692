// Package dirwatch reports which entries of a directory changed, through
// inotify: one coalescing channel, and the names of the entries the events
// named since the last look. It is the one inotify loop of the daemon,
// shared by the netns directory's watcher (sidecar/netns), which looks at
// the named entries only, and the --manifests directory's (sidecar), which
// reads the whole directory again. Callers keep a periodic resync: inotify
// can be unavailable, its queue can overflow, and a change can happen
// before the watch starts.
package dirwatch

import (
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// maxPending bounds the names kept between two Takes: past it the watcher
// forgets them and reports Changes.All (a burst that large is cheaper to
// look at as a whole than to remember name by name).
const maxPending = 4096

// Changes is what the events reported since the last Take.
type Changes struct {
	// Names are the entries the events named, sorted, each once.
	Names []string
	// All: something changed that no name says (the kernel's queue
	// overflowed, the directory itself was moved, deleted or unmounted,
	// more than maxPending names): look at every entry.
	All bool
}

// Watcher is one inotify watch of a directory.
type Watcher struct {
	f    *os.File
	c    chan struct{}
	done chan struct{}

	mu    sync.Mutex
	names map[string]struct{}
	all   bool
}

// Watch reports changes of dir's entries matching mask (unix.IN_* bits).
// A send on Events means "Take has something": a buffer of one, so a burst
// is one wake-up. Stop ends the watch.
func Watch(dir string, mask uint32) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	w := &Watcher{
		f:     os.NewFile(uintptr(fd), "inotify"), // nonblocking: reads park on the poller, Close wakes them
		c:     make(chan struct{}, 1),
		done:  make(chan struct{}),
		names: map[string]struct{}{},
	}
	go w.run()
	return w, nil
}

// Events wakes the caller when Take has something. It is closed when the
// watch ends (Stop, or the directory is gone or moved: watch its name
// again): a last Take after that still returns what came before.
func (w *Watcher) Events() <-chan struct{} { return w.c }

// Take returns what changed since the last Take and forgets it.
func (w *Watcher) Take() Changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := Changes{All: w.all}
	if len(w.names) > 0 {
		ch.Names = make([]string, 0, len(w.names))
		for n := range w.names {
			ch.Names = append(ch.Names, n)
		}
		slices.Sort(ch.Names)
		clear(w.names)
	}
	w.all = false
	return ch
}

// Stop ends the watch and waits for its goroutine.
func (w *Watcher) Stop() {
	w.f.Close()
	<-w.done
}

func (w *Watcher) run() {
	defer close(w.done)
	defer close(w.c)
	// Room for many events per read: a burst of `ip netns add` is read in
	// a few calls, not one per event.
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		evs, derr := Decode(buf[:n])
		w.mu.Lock()
		w.all = w.all || derr != nil
		gone := false
		for _, ev := range evs {
			w.note(ev)
			gone = gone || ev.Mask&(unix.IN_IGNORED|unix.IN_MOVE_SELF) != 0
		}
		w.mu.Unlock()
		select {
		case w.c <- struct{}{}:
		default:
		}
		if gone {
			// The kernel removed the watch (the directory was deleted or
			// unmounted), or the directory was moved: the watch follows
			// the old inode, and a directory made under the name is not
			// watched. Nothing more of use will come: the caller watches
			// the name again.
			return
		}
	}
}

// dirEvents are the events about the directory itself, or about no entry.
const dirEvents = unix.IN_Q_OVERFLOW | unix.IN_IGNORED | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_UNMOUNT

// note records one event. With w.mu held.
func (w *Watcher) note(ev Event) {
	if ev.Mask&dirEvents != 0 || ev.Name == "" {
		w.all = true
		return
	}
	if w.all {
		return // every entry is looked at anyway
	}
	if len(w.names) >= maxPending {
		w.all = true
		clear(w.names)
		return
	}
	w.names[ev.Name] = struct{}{}
}
