package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

func FuzzParse(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.cfg"))
	if err != nil {
		f.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join("testdata", "*", "*.cfg"))
	for _, path := range append(fixtures, more...) {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, bad := range []string{
		"",
		"\"",
		"'",
		"\\",
		"\\x",
		"\"$",
		"\"${",
		"\"${A-",
		"\"${A[*]}\"",
		"\x00\xff\xfe",
		"frontend\n",
		"global\n\tnbthread 2\n\tnbthread 0\n\tnbthread 99999999999999999999\n\tnbthread -1 2\n",
		"frontend \"f\n\tbind :80\n",
		"listen l\n\tbind :::\n",
		"listen l\n\tbind [::1]\n",
		"listen l\n\tbind [\n",
		"listen l\n\tbind [::]:80 v4v6 v6only v4v6\n\tbind 0.0.0.0:80 v4v6\n\tbind 1.2.3.4:1 v6only\n",
		"listen l\n\tbind :::80 v6only\n\tbind [::]:80 v4v6\n\tbind 0.0.0.0:80\n\tbind [::ffff:1.2.3.4]:1 v4v6\n",
		"listen l\n\tbind ]:1\n",
		"listen l\n\tbind *:0\n\tbind :65536\n\tbind :-1\n",
		"backend b\n\tserver s [::1\n",
		"backend b\n\tserver s :\n\tserver t ::\n\tserver u *:+65535\n\tserver v *:-65536\n",
		"backend b\n\tserver s 1.2.3.4 weight\n\tserver t 1.2.3.4 namespace\n",
		"backend b\n\tdefault-server inter 0 rise 0 fall 0 weight -1\n\tserver s 1.2.3.4\n",
		"defaults\n\ttimeout client 99999999999999999999999d\n\ttimeout server 0\n",
		"global\n\tmaxconn 99999999999999999999\n",
		"namespace_list\n\tnamespace ..\n\tnamespace .\n\tnamespace " + strings.Repeat("n", 256) + "\n",
		"frontend f\n\tbind :80\n\tdefault_backend f\n",
		"frontend f\n\tbind :80 namespace a\n\tbind :80 namespace a\n\tdefault_backend b\nbackend b\n",
		"backend b\n\tsource 0.0.0.0 usesrc\n\tsource :: usesrc clientip\n",
		"userlist u\n\tuser x\n",
		"bind :80\r\n",
		"listen \"$HOME\"\n",
	} {
		f.Add([]byte(bad))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("fuzz.cfg", src)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with an error")
			}
			lines := strings.Count(string(src), "\n") + 1
			for _, p := range problems(err) {
				var e *Error
				if !errors.As(p, &e) {
					t.Fatalf("problem %q is not an *Error", p)
				}
				if e.Pos.File != "fuzz.cfg" || e.Pos.Line < 1 || e.Pos.Line > lines {
					t.Fatalf("problem %q has a bad position %v", p, e.Pos)
				}
				if e.Err == nil || strings.Contains(e.Msg, "\n") || !strings.Contains(e.Msg, ";") && !strings.Contains(e.Msg, ":") {
					t.Fatalf("problem %q is malformed", p)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		backends := map[string]bool{}
		for _, b := range c.Backends {
			backends[b.Name] = true
			if b.Balance == "" {
				t.Fatalf("backend %q has no balance", b.Name)
			}
			for _, s := range b.Servers {
				if s.Inter <= 0 || s.Rise < 1 || s.Fall < 1 || s.Weight < 0 || s.Weight > 256 {
					t.Fatalf("server %+v out of range", s)
				}
				if s.PortMode == PortFixed && s.Port == 0 {
					t.Fatalf("server %+v has a fixed port 0", s)
				}
			}
		}
		for _, f := range c.Frontends {
			if !backends[f.DefaultBackend] {
				t.Fatalf("frontend %q: default_backend %q does not exist", f.Name, f.DefaultBackend)
			}
			if len(f.Binds) == 0 {
				t.Fatalf("frontend %q has no bind", f.Name)
			}
			for _, b := range f.Binds {
				if !b.Addr.IsValid() || b.Addr.Port() == 0 {
					t.Fatalf("frontend %q: bad bind %+v", f.Name, b)
				}
			}
		}
		names := c.NamespaceNames()
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("NamespaceNames not sorted and unique: %q", names)
		}
		for _, n := range names {
			if !hooks.ValidName(n) {
				t.Fatalf("invalid namespace name %q accepted", n)
			}
		}
	})
}
