// Package atomicfile writes files so that a reader, or the file system
// after a crash, finds the old content or the new one, never a part.
//
// It owns one job: write a temporary file next to the target, fsync it,
// rename (Write) or link (Create) it into place, then fsync the directory
// so that the new name survives a power loss too.
//
// The temporary file is hidden and its name does not end in the target's
// extension (".NAME.nsproxy-tmp-RANDOM"), so that the readers of those
// directories (attachment records, CNI conflists, the state file) skip
// one that a crash left behind. A failed write removes its temporary file.
//
// It uses the standard library only: hooks, and through it the CNI plugin,
// import it. It must not create directories, follow links or take locks:
// those are the caller's decisions.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultMode is the mode of a written file without WithMode: readable by
// its owner only, the safe choice for state.
const DefaultMode fs.FileMode = 0o600

// TempInfix is in the name of every temporary file, after the target's
// name: an administrator who finds ".10-net.conflist.nsproxy-tmp-123"
// knows who left it.
const TempInfix = ".nsproxy-tmp-"

// Option sets how a file is written.
type Option func(*options)

type options struct {
	mode     fs.FileMode
	uid, gid int
	noSync   bool
}

// WithMode sets the permission bits of the file (DefaultMode without it).
// The umask does not apply.
func WithMode(perm fs.FileMode) Option {
	return func(o *options) { o.mode = perm.Perm() }
}

// WithOwner sets the file's owner and group (the writer's without it); -1
// keeps the writer's, as in chown(2).
func WithOwner(uid, gid int) Option {
	return func(o *options) { o.uid, o.gid = uid, gid }
}

// NoSync skips the fsyncs: the write stays atomic for every reader and
// survives any process's crash (the page cache holds it), but not a crash
// of the kernel. Only for files that mean nothing after a reboot, such as
// records of network namespaces, which die with the kernel.
func NoSync() Option {
	return func(o *options) { o.noSync = true }
}

// Write replaces path with data. It returns only once data and the new
// name are on disk; on error the old content (or no file) is left. A
// symbolic link at path is replaced, not followed.
func Write(path string, data []byte, opts ...Option) error {
	o := optionsOf(opts)
	tmp, err := writeTemp(path, data, o)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if o.noSync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

func optionsOf(opts []Option) options {
	o := options{mode: DefaultMode, uid: -1, gid: -1}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Create creates path with data unless something (a file, a directory, a
// link) has that name already; then it reports created false and leaves
// it alone. A concurrent Create of the same path makes one of them win.
func Create(path string, data []byte, opts ...Option) (created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	o := optionsOf(opts)
	tmp, err := writeTemp(path, data, o)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	// link(2), unlike rename(2), never replaces: creation is atomic and
	// the complete content is there from the first moment.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if o.noSync {
		return true, nil
	}
	return true, syncDir(filepath.Dir(path))
}

// writeTemp writes data into a new temporary file next to path, with the
// options' mode and owner, fsynced unless NoSync, and returns its name.
func writeTemp(path string, data []byte, o options) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+TempInfix+"*")
	if err != nil {
		return "", err
	}
	err = func() error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Chmod(o.mode); err != nil { // exact, whatever the umask
			return err
		}
		if o.uid != -1 || o.gid != -1 {
			if err := f.Chown(o.uid, o.gid); err != nil {
				return err
			}
		}
		if o.noSync {
			return nil
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Remove removes path durably (with NoSync: for every process, not for
// the disk): once it returns, the name is gone from the directory on disk
// too. A missing path is not an error.
func Remove(path string, opts ...Option) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if optionsOf(opts).noSync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}
