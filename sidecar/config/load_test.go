package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadMultipleFiles(t *testing.T) {
	a, b := filepath.Join("testdata", "multi", "a.cfg"), filepath.Join("testdata", "multi", "b.cfg")
	c, err := Load(a, b)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Global.MaxConn != 100 {
		t.Errorf("Global.MaxConn = %d", c.Global.MaxConn)
	}
	wantNS := []NamespaceRef{{Name: "red", Pos: Pos{File: a, Line: 5}}, {Name: "blue", Pos: Pos{File: b, Line: 3}}}
	if !reflect.DeepEqual(c.Namespaces, wantNS) {
		t.Errorf("Namespaces = %+v, want %+v", c.Namespaces, wantNS)
	}
	if got := c.NamespaceNames(); !reflect.DeepEqual(got, []string{"blue", "red"}) {
		t.Errorf("NamespaceNames = %q", got)
	}
	if len(c.Frontends) != 1 || len(c.Backends) != 2 {
		t.Fatalf("frontends %+v backends %+v", c.Frontends, c.Backends)
	}
	f := c.Frontends[0]
	if f.Name != "fe_red" || f.Pos != (Pos{File: b, Line: 5}) || f.DefaultBackend != "be_red" || f.Binds[0].Namespace != "blue" {
		t.Errorf("frontend = %+v", f)
	}
	red, blue := c.Backends[0], c.Backends[1]
	if red.Name != "be_red" || red.Pos != (Pos{File: a, Line: 11}) || blue.Name != "be_blue" || blue.Pos != (Pos{File: b, Line: 9}) {
		t.Errorf("backends = %+v, %+v", red, blue)
	}
	// As in HAProxy, the defaults section of a.cfg still applies in b.cfg.
	if blue.ConnectTimeout != 2*time.Second || !blue.Servers[0].Check {
		t.Errorf("defaults of a.cfg not applied in b.cfg: %+v %+v", blue, blue.Servers[0])
	}
}

func TestLoadOneFile(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Frontends) != 2 || c.Frontends[0].Pos.File != filepath.Join("testdata", "full.cfg") {
		t.Fatalf("frontends = %+v", c.Frontends)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bad1 := write("bad1.cfg", "global\n\tdaemon\n")
	bad2 := write("bad2.cfg", "backend b1\n\tmode http\n")
	missing := filepath.Join(dir, "missing.cfg")
	multi := func(name string) string { return filepath.Join("testdata", "multi", name) }

	tests := []struct {
		name  string
		paths []string
		want  []string
		is    error
		n     int
	}{
		{name: "no paths", paths: nil,
			want: []string{"no config file given; pass at least one path"}, is: ErrNoFiles, n: 1},
		{name: "missing file only reports the read error", paths: []string{multi("b.cfg"), missing},
			want: []string{"read config: open " + missing}, is: fs.ErrNotExist, n: 1},
		{name: "problems of every file are reported", paths: []string{bad1, bad2},
			want: []string{bad1 + `:2: unknown keyword "daemon" in global`, bad2 + `:2: mode "http" in backend "b1": only mode tcp is supported`},
			is:   ErrSyntax, n: 2},
		{name: "missing backend of another file", paths: []string{multi("b.cfg")},
			want: []string{multi("b.cfg") + `:5: frontend "fe_red": default_backend "be_red" is not defined`}, is: ErrUnknownBackend, n: 1},
		{name: "duplicates across files name both places", paths: []string{multi("a.cfg"), multi("b.cfg"), multi("dup.cfg")},
			want: []string{
				multi("dup.cfg") + `:9: namespace "red" is listed twice in namespace_list (first at ` + multi("a.cfg") + `:5)`,
				multi("dup.cfg") + `:5: bind 0.0.0.0:8000 in namespace "blue" of frontend "fe_other" is already bound by frontend "fe_red" at ` + multi("b.cfg") + `:6`,
				multi("dup.cfg") + `:1: duplicate backend "be_red", first defined at ` + multi("a.cfg") + `:11 as backend "be_red"`,
			},
			is: ErrDuplicate, n: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.paths...)
			if err == nil || c != nil {
				t.Fatalf("Load = %+v, %v; want an error", c, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q; got:\n%v", w, err)
				}
			}
			if got := len(problems(err)); got != tt.n {
				t.Errorf("got %d problems, want %d:\n%v", got, tt.n, err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error is not %v: %v", tt.is, err)
			}
		})
	}
}
