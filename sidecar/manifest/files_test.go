package manifest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFiles: the one listing rule of a manifest path (--manifests DIR and
// the CLI's -f): a file is itself; a directory gives its *.yaml and *.yml
// files in name order, without subdirectories (also symlinked ones),
// dot-files or other extensions.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.yaml", "a.yml", "c.txt", ".#b.yaml", ".hidden.yml", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"sub.yaml", "empty"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "sub.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "b.yaml"), filepath.Join(dir, "to-b.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		want       []string
		err        bool
	}{
		{"directory", dir, []string{"a.yml", "b.yaml", "to-b.yaml"}, false},
		{"one file, any name", filepath.Join(dir, "c.txt"), []string{"c.txt"}, false},
		{"a dot-file named itself", filepath.Join(dir, ".#b.yaml"), []string{".#b.yaml"}, false},
		{"empty directory", filepath.Join(dir, "empty"), nil, false},
		{"missing", filepath.Join(dir, "nope"), nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Files(c.path)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			var base []string
			for _, g := range got {
				base = append(base, filepath.Base(g))
			}
			if !slices.Equal(base, c.want) {
				t.Errorf("Files(%s) = %v, want %v", c.path, base, c.want)
			}
		})
	}
}
