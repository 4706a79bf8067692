package cniconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

// DefaultDir is where runtimes look for network configurations.
const DefaultDir = "/etc/cni/net.d"

const (
	lockName = "cni.lock" // podman's lock of its CNI config directory
	lockWait = 10 * time.Second
)

// Conflists lists every *.conflist in dir. Single-plugin files (.conf,
// .json), which cannot chain nsproxy-cni, are reported in notes.
func Conflists(dir string) (files, notes []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		n := e.Name()
		switch filepath.Ext(n) {
		case ".conflist":
			files = append(files, filepath.Join(dir, n))
		case ".conf", ".json":
			notes = append(notes, fmt.Sprintf("%s: skipped: a single-plugin configuration cannot chain nsproxy-cni; convert it into a .conflist",
				filepath.Join(dir, n)))
		}
	}
	return files, notes, nil
}

// InstallFile applies Install to the file at path. Before the first change
// it keeps a backup (BackupSuffix). With dryRun it writes nothing; the
// Result still holds what it would write.
func InstallFile(path string, opt Options, dryRun bool) (Result, error) {
	return updateFile(path, dryRun, true, func(data []byte) (Result, error) { return Install(data, opt) })
}

// UninstallFile applies Uninstall to the file at path and removes the
// backup when the file is back to its content. With dryRun it writes
// nothing.
func UninstallFile(path string, dryRun bool) (Result, error) {
	return updateFile(path, dryRun, false, Uninstall)
}

// updateFile applies change to the file at path (symlinks are followed,
// so that the link stays a link) and writes the result atomically, with
// the mode and owner of the file. install keeps a backup first; uninstall
// deletes the backup when the file is back to its content.
func updateFile(path string, dryRun, install bool, change func([]byte) (Result, error)) (Result, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Result{}, err
	}
	unlock, err := lockDir(filepath.Dir(real), dryRun)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	fi, err := os.Stat(real)
	if err != nil {
		return Result{}, err
	}
	if !fi.Mode().IsRegular() {
		return Result{}, errors.New("not a regular file")
	}
	if fi.Size() > maxSize {
		return Result{}, fmt.Errorf("%w: larger than %d bytes", ErrNotConflist, maxSize)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return Result{}, err
	}
	res, err := change(data)
	if err != nil || res.Out == nil || dryRun {
		return res, err
	}
	like := []atomicfile.Option{atomicfile.WithMode(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		like = append(like, atomicfile.WithOwner(int(st.Uid), int(st.Gid)))
	}
	backup := real + BackupSuffix
	if install {
		created, err := atomicfile.Create(backup, data, like...)
		if err != nil {
			return Result{}, fmt.Errorf("backup: %w", err)
		}
		if created {
			res.Summary += " (backup: " + backup + ")"
		}
	}
	if err := atomicfile.Write(real, res.Out, like...); err != nil {
		return Result{}, err
	}
	if !install {
		if old, err := os.ReadFile(backup); err == nil && jsonEqual(old, res.Out) {
			if os.Remove(backup) == nil {
				res.Summary += " (removed the backup: the file is back to its content)"
			}
		}
	}
	return res, nil
}

// lockDir holds podman's cni.lock of dir, if there is one, so that a
// concurrent `podman network create` does not interleave with us.
func lockDir(dir string, readOnly bool) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || (readOnly && errors.Is(err, fs.ErrPermission)) {
			return func() {}, nil
		}
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	for deadline := time.Now().Add(lockWait); ; {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if (err != unix.EAGAIN && err != unix.EACCES) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
