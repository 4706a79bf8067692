package atomicfile_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

// strayTemp is what a writer killed between write and rename leaves: a
// temporary file with part of its content.
const strayTemp = ".f.json" + atomicfile.TempInfix + "12345"

// setup prepares dir/f.json as the test names it.
type setup int

const (
	absent     setup = iota
	oldFile          // "old\n", mode 0644
	crashed          // oldFile plus a stray temporary file
	directory        // a directory with a file in it
	danglingLn       // a symbolic link to a missing file
)

func prepare(t *testing.T, s setup) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	switch s {
	case oldFile, crashed:
		must(os.WriteFile(path, []byte("old\n"), 0o644))
		if s == crashed {
			must(os.WriteFile(filepath.Join(dir, strayTemp), []byte(`{"half`), 0o600))
		}
	case directory:
		must(os.Mkdir(path, 0o755))
		must(os.WriteFile(filepath.Join(path, "x"), nil, 0o644))
	case danglingLn:
		must(os.Symlink(filepath.Join(dir, "missing"), path))
	}
	return path
}

// checkDir fails when dir holds a temporary file other than the stray one
// the test put there: a write must never leave its own behind.
func checkDir(t *testing.T, dir string, s setup) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	stray := false
	for _, e := range entries {
		switch {
		case e.Name() == strayTemp:
			stray = true
		case strings.Contains(e.Name(), atomicfile.TempInfix):
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	if stray != (s == crashed) {
		t.Errorf("stray temporary file there: %v, want %v", stray, s == crashed)
	}
}

func TestWrite(t *testing.T) {
	root := os.Geteuid() == 0
	tests := []struct {
		name     string
		setup    setup
		opts     []atomicfile.Option
		wantErr  bool
		wantMode fs.FileMode
		uid, gid int // -1: the writer's
	}{
		{name: "new file, default mode", setup: absent, wantMode: atomicfile.DefaultMode, uid: -1, gid: -1},
		{name: "replaces, mode of the new file", setup: oldFile, opts: []atomicfile.Option{atomicfile.WithMode(0o640)},
			wantMode: 0o640, uid: -1, gid: -1},
		{name: "executable", setup: absent, opts: []atomicfile.Option{atomicfile.WithMode(0o755)}, wantMode: 0o755, uid: -1, gid: -1},
		{name: "owner", setup: oldFile, opts: []atomicfile.Option{atomicfile.WithMode(0o644), atomicfile.WithOwner(1234, 5678)},
			wantMode: 0o644, uid: 1234, gid: 5678},
		{name: "after a crash: the stray temporary file is no obstacle", setup: crashed, wantMode: atomicfile.DefaultMode, uid: -1, gid: -1},
		{name: "replaces a link, does not follow it", setup: danglingLn, wantMode: atomicfile.DefaultMode, uid: -1, gid: -1},
		{name: "a directory is not replaced", setup: directory, wantErr: true},
		{name: "no sync: replaces, same rules", setup: crashed, opts: []atomicfile.Option{atomicfile.NoSync(), atomicfile.WithMode(0o640)},
			wantMode: 0o640, uid: -1, gid: -1},
		{name: "no sync: a directory is not replaced", setup: directory, opts: []atomicfile.Option{atomicfile.NoSync()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.uid != -1 || tt.gid != -1) && !root {
				t.Skip("chown to another owner needs root")
			}
			path := prepare(t, tt.setup)
			err := atomicfile.Write(path, []byte("new\n"), tt.opts...)
			checkDir(t, filepath.Dir(path), tt.setup)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
					t.Errorf("the directory is gone: %v %v", fi, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("mode %v, want a regular file %v", fi.Mode(), tt.wantMode)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if tt.uid != -1 && (int(st.Uid) != tt.uid || int(st.Gid) != tt.gid) {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if tt.uid == -1 && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
				t.Errorf("owner %d:%d, want the writer's", st.Uid, st.Gid)
			}
			if got, _ := os.ReadFile(path); string(got) != "new\n" {
				t.Errorf("content %q", got)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name    string
		setup   setup
		created bool
		want    string // content afterwards; "": path is not a regular file
	}{
		{name: "new", setup: absent, created: true, want: "new\n"},
		{name: "never replaces a file", setup: oldFile, want: "old\n"},
		{name: "after a crash: the stray temporary file is no obstacle", setup: crashed, want: "old\n"},
		{name: "never replaces a directory", setup: directory},
		{name: "never replaces a link", setup: danglingLn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := prepare(t, tt.setup)
			created, err := atomicfile.Create(path, []byte("new\n"), atomicfile.WithMode(0o644))
			if err != nil || created != tt.created {
				t.Fatalf("Create = %v, %v; want %v", created, err, tt.created)
			}
			checkDir(t, filepath.Dir(path), tt.setup)
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if fi.Mode().IsRegular() {
					t.Errorf("%v replaced by a file", tt.setup)
				}
				return
			}
			if got, _ := os.ReadFile(path); string(got) != tt.want {
				t.Errorf("content %q, want %q", got, tt.want)
			}
			if tt.created && fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", fi.Mode())
			}
		})
	}
	// Both create, one wins, the loser's content is not there.
	path := prepare(t, absent)
	first, err1 := atomicfile.Create(path, []byte("first\n"))
	second, err2 := atomicfile.Create(path, []byte("second\n"))
	if err1 != nil || err2 != nil || !first || second {
		t.Errorf("Create twice = %v %v, %v %v", first, err1, second, err2)
	}
	if got, _ := os.ReadFile(path); string(got) != "first\n" {
		t.Errorf("content %q", got)
	}
}

// TestFailedWriteKeepsOldContent fills a small file system so that the
// temporary file cannot be written: the old file must survive complete,
// and no part of the new one may stay behind.
func TestFailedWriteKeepsOldContent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "f.json")
	old := bytes.Repeat([]byte("o"), 16<<10)
	if err := atomicfile.Write(path, old); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func() error{
		"Write": func() error { return atomicfile.Write(path, bytes.Repeat([]byte("n"), 128<<10)) },
		"Create": func() error {
			_, err := atomicfile.Create(path+".backup", bytes.Repeat([]byte("n"), 128<<10))
			return err
		},
	} {
		if err := write(); err == nil {
			t.Fatalf("%s of more than the file system holds: no error", name)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, old) {
			t.Errorf("after a failed %s the old content is gone (%d bytes)", name, len(got))
		}
		if _, err := os.Lstat(path + ".backup"); err == nil {
			t.Errorf("a failed %s created the file", name)
		}
		checkDir(t, dir, oldFile)
	}
}

func TestRemove(t *testing.T) {
	for _, tt := range []struct {
		name    string
		setup   setup
		wantErr bool
	}{
		{"file", oldFile, false},
		{"missing", absent, false},
		{"link, not its target", danglingLn, false},
		{"non-empty directory", directory, true},
	} {
		for _, opts := range [][]atomicfile.Option{nil, {atomicfile.NoSync()}} {
			t.Run(fmt.Sprintf("%s/options=%d", tt.name, len(opts)), func(t *testing.T) {
				path := prepare(t, tt.setup)
				err := atomicfile.Remove(path, opts...)
				if (err != nil) != tt.wantErr {
					t.Fatalf("Remove = %v, want error %v", err, tt.wantErr)
				}
				if _, lerr := os.Lstat(path); !tt.wantErr && lerr == nil {
					t.Error("still there")
				}
			})
		}
	}
	if err := atomicfile.Remove(filepath.Join(t.TempDir(), "no", "dir")); err != nil {
		t.Errorf("missing directory: %v", err)
	}
}

// BenchmarkWrite: what the fsyncs of a durable write cost against NoSync
// (a record of a few hundred bytes).
func BenchmarkWrite(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 600)
	for _, tt := range []struct {
		name string
		opts []atomicfile.Option
	}{{"sync", nil}, {"nosync", []atomicfile.Option{atomicfile.NoSync()}}} {
		b.Run(tt.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "r.json")
			for b.Loop() {
				if err := atomicfile.Write(path, data, tt.opts...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
