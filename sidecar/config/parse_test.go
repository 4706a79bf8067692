package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// problems flattens the errors.Join tree returned by Parse, Load and Validate.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []error{err}
}

func mustParse(t *testing.T, name, src string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): unexpected error:\n%v", name, err)
	}
	return c
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func addr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestReferenceSnippets loads every config snippet of HAProxy's network
// namespace document verbatim, each alone and combined into complete files.
func TestReferenceSnippets(t *testing.T) {
	t.Run("namespace_list alone", func(t *testing.T) {
		c := mustParse(t, "ref-namespace-list.cfg", string(readFixture(t, "ref-namespace-list.cfg")))
		want := []NamespaceRef{
			{Name: "netns1", Pos: Pos{File: "ref-namespace-list.cfg", Line: 2}},
			{Name: "netns2", Pos: Pos{File: "ref-namespace-list.cfg", Line: 3}},
		}
		if !reflect.DeepEqual(c.Namespaces, want) {
			t.Fatalf("Namespaces = %+v, want %+v", c.Namespaces, want)
		}
		if len(c.Frontends)+len(c.Backends) != 0 {
			t.Fatalf("unexpected proxies: %+v %+v", c.Frontends, c.Backends)
		}
	})
	t.Run("backend alone", func(t *testing.T) {
		c := mustParse(t, "ref-backend-server-namespace.cfg", string(readFixture(t, "ref-backend-server-namespace.cfg")))
		if len(c.Backends) != 1 || c.Backends[0].Name != "b_example" || len(c.Backends[0].Servers) != 1 {
			t.Fatalf("Backends = %+v", c.Backends)
		}
		want := Server{
			Name: "s1", Pos: Pos{File: "ref-backend-server-namespace.cfg", Line: 2},
			Addr: addr("192.168.1.100"), Port: 80, PortMode: PortFixed, Namespace: "netns2",
			Inter: 2 * time.Second, Rise: 2, Fall: 3, Weight: 1,
		}
		if got := *c.Backends[0].Servers[0]; got != want {
			t.Fatalf("server = %+v, want %+v", got, want)
		}
	})
	t.Run("frontend alone only lacks its backend", func(t *testing.T) {
		_, err := Parse("ref-frontend-netns2.cfg", readFixture(t, "ref-frontend-netns2.cfg"))
		ps := problems(err)
		if len(ps) != 1 || !errors.Is(err, ErrUnknownBackend) ||
			!strings.Contains(err.Error(), `ref-frontend-netns2.cfg:1: frontend "f_example": default_backend "http" is not defined`) {
			t.Fatalf("want exactly the missing backend error, got:\n%v", err)
		}
	})
	t.Run("namespace_list, frontend and backend http", func(t *testing.T) {
		c := mustParse(t, "ref-combined-netns2.cfg", string(readFixture(t, "ref-combined-netns2.cfg")))
		f := c.Frontends[0]
		wantBind := Bind{Pos: Pos{File: "ref-combined-netns2.cfg", Line: 6}, Addr: addrPort("192.168.1.1:80"), Namespace: "netns2"}
		if f.Name != "f_example" || f.DefaultBackend != "http" || len(f.Binds) != 1 || f.Binds[0] != wantBind {
			t.Fatalf("frontend = %+v", f)
		}
		if got := c.NamespaceNames(); !reflect.DeepEqual(got, []string{"netns1", "netns2"}) {
			t.Fatalf("NamespaceNames = %q", got)
		}
	})
	t.Run("accept-proxy frontend and usesrc backend", func(t *testing.T) {
		c := mustParse(t, "ref-frontend-accept-proxy-backend.cfg", string(readFixture(t, "ref-frontend-accept-proxy-backend.cfg")))
		f, b := c.Frontends[0], c.Backends[0]
		if f.DefaultBackend != "b_example" || len(f.Binds) != 1 || !f.Binds[0].AcceptProxy ||
			f.Binds[0].Addr != addrPort("192.168.1.1:9990") || f.Binds[0].Namespace != "" {
			t.Fatalf("frontend = %+v", f)
		}
		if !b.UseSrcClientIP || b.Source != netip.IPv4Unspecified() || b.Balance != BalanceRoundRobin {
			t.Fatalf("backend = %+v", b)
		}
		s := b.Servers[0]
		if s.Name != "snodes" || s.Addr.IsValid() || s.PortMode != PortFromClient || !s.ClientNamespace ||
			s.Namespace != "" || !s.UsesClientDestination() {
			t.Fatalf("server = %+v", s)
		}
		if got := c.NamespaceNames(); len(got) != 0 {
			t.Fatalf("NamespaceNames = %q, want none", got)
		}
	})
}

func TestParseFullFixture(t *testing.T) {
	c := mustParse(t, "full.cfg", string(readFixture(t, "full.cfg")))
	at := func(line int) Pos { return Pos{File: "full.cfg", Line: line} }

	if c.Global.MaxConn != 4000 {
		t.Errorf("Global.MaxConn = %d", c.Global.MaxConn)
	}
	if got := c.NamespaceNames(); !reflect.DeepEqual(got, []string{"tenant-a", "tenant.b"}) {
		t.Errorf("NamespaceNames = %q", got)
	}

	wantFrontends := []Frontend{{
		Name: "fe_main", Pos: at(17),
		Binds: []Bind{
			{Pos: at(18), Addr: addrPort("0.0.0.0:80")},
			{Pos: at(19), Addr: addrPort("[::1]:8080"), Namespace: "tenant-a", AcceptProxy: true},
			{Pos: at(20), Addr: addrPort("10.0.0.1:443"), Namespace: "tenant.b", AcceptProxy: true},
		},
		DefaultBackend: "be_main", MaxConn: 1000,
		ClientTimeout: 30 * time.Second, ClientFinTimeout: time.Minute,
	}, {
		Name: "ln_dns", Pos: at(40), Listen: true,
		Binds:          []Bind{{Pos: at(41), Addr: addrPort("127.0.0.1:5353")}},
		DefaultBackend: "ln_dns", MaxConn: 50, ClientTimeout: 10 * time.Second,
	}}
	if len(c.Frontends) != len(wantFrontends) {
		t.Fatalf("got %d frontends", len(c.Frontends))
	}
	for i, want := range wantFrontends {
		if !reflect.DeepEqual(*c.Frontends[i], want) {
			t.Errorf("frontend %d =\n%+v, want\n%+v", i, *c.Frontends[i], want)
		}
	}

	// defaults: inter 3s rise 3 fall 2 check; be_main: weight 10 send-proxy-v2.
	srv := func(name string, line int, a netip.Addr, mode PortMode, port uint16, off int) Server {
		return Server{Name: name, Pos: at(line), Addr: a, PortMode: mode, Port: port, PortOffset: off,
			Check: true, Inter: 3 * time.Second, Rise: 3, Fall: 2, Weight: 10, SendProxy: 2}
	}
	web1 := srv("web1", 30, addr("10.1.0.1"), PortFixed, 8080, 0)
	web1.Namespace = "tenant-a"
	web2 := srv("web2", 31, addr("10.1.0.2"), PortFromClient, 0, 0)
	web2.Weight, web2.Backup, web2.SendProxy = 20, true, 1
	web3 := srv("web3", 32, netip.Addr{}, PortOffset, 0, 1000)
	web3.ClientNamespace, web3.Disabled = true, true
	web4 := srv("web4", 33, addr("10.1.0.4"), PortOffset, 0, -10)
	web4.Inter = 10 * time.Second
	web5 := srv("web5", 34, netip.IPv4Unspecified(), PortFromClient, 0, 0)
	dns1 := Server{Name: "dns1", Pos: at(46), Addr: addr("fd00::53"), PortMode: PortFixed, Port: 53,
		Inter: 100 * time.Millisecond, Rise: 1, Fall: 1, Weight: 1}

	wantBackends := []struct {
		b       Backend
		servers []Server
	}{
		{Backend{Name: "be_main", Pos: at(24), Balance: BalanceLeastConn,
			ConnectTimeout: 5 * time.Second, ServerTimeout: 30 * time.Second,
			ServerFinTimeout: 500 * time.Millisecond, CheckTimeout: 2 * time.Second,
			Source: addr("10.0.0.5"), DefaultServer: Server{Check: true, Inter: 3 * time.Second, Rise: 3, Fall: 2, Weight: 10, SendProxy: 2}},
			[]Server{web1, web2, web3, web4, web5}},
		{Backend{Name: "ln_dns", Pos: at(40), Listen: true, Balance: BalanceFirst,
			ConnectTimeout: time.Second, DefaultServer: BuiltinDefaults().Server}, []Server{dns1}},
	}
	if len(c.Backends) != len(wantBackends) {
		t.Fatalf("got %d backends", len(c.Backends))
	}
	for i, want := range wantBackends {
		got := *c.Backends[i]
		servers := got.Servers
		got.Servers = nil
		if !reflect.DeepEqual(got, want.b) {
			t.Errorf("backend %d =\n%+v, want\n%+v", i, got, want.b)
		}
		if len(servers) != len(want.servers) {
			t.Fatalf("backend %d: %d servers, want %d", i, len(servers), len(want.servers))
		}
		for j := range servers {
			if *servers[j] != want.servers[j] {
				t.Errorf("backend %d server %d =\n%+v, want\n%+v", i, j, *servers[j], want.servers[j])
			}
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, c *Config)
	}{{
		name: "empty file",
		src:  "",
		check: func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(*c, Config{Defaults: BuiltinDefaults()}) {
				t.Fatalf("config = %+v, want zero with the built-in defaults", *c)
			}
		},
	}, {
		name: "PROXY protocol tunables",
		src: "global\n\ttune.proxy-header-max-size 512\n" +
			"defaults\n\ttimeout proxy-header 2s\n\toption lenient-netns-tlv\n" +
			"frontend f\n\tbind :80 accept-proxy\n\ttrusted-proxies 10.1.2.3/8 192.0.2.1 ::1\n\tdefault_backend b\n" +
			"backend b\n",
		check: func(t *testing.T, c *Config) {
			f := c.Frontends[0]
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("::1/128")}
			if c.Global.ProxyHeaderMaxSize != 512 || f.ProxyHeaderTimeout != 2*time.Second || !f.LenientNetnsTLV ||
				!reflect.DeepEqual(f.TrustedProxies, want) || !f.Binds[0].AcceptProxy {
				t.Fatalf("global %+v frontend %+v", c.Global, *f)
			}
		},
	}, {
		name: "nbthread",
		src:  "global\n\tnbthread 3\n",
		check: func(t *testing.T, c *Config) {
			if c.Global.NbThread != 3 {
				t.Fatalf("NbThread = %d, want 3", c.Global.NbThread)
			}
		},
	}, {
		name: "nbthread left out: one per CPU",
		src:  "global\n\tmaxconn 10\n",
		check: func(t *testing.T, c *Config) {
			if c.Global.NbThread != 0 {
				t.Fatalf("NbThread = %d, want 0 (one loop per CPU)", c.Global.NbThread)
			}
		},
	}, {
		name: "bind address families",
		src: frontendWith("bind 0.0.0.0:80", "bind [::]:80 v6only", "bind [::]:81 v4v6", "bind :::82 v6only namespace n1",
			"bind [::1]:83 v4v6 accept-proxy", "bind :::84", "default_backend b1"),
		check: func(t *testing.T, c *Config) {
			var got []string
			for _, b := range c.Frontends[0].Binds {
				got = append(got, fmt.Sprintf("%s v4v6=%v v6only=%v ns=%q", b.Addr, b.V4V6, b.V6Only, b.Namespace))
			}
			want := []string{`0.0.0.0:80 v4v6=false v6only=false ns=""`, `[::]:80 v4v6=false v6only=true ns=""`,
				`[::]:81 v4v6=true v6only=false ns=""`, `[::]:82 v4v6=false v6only=true ns="n1"`,
				`[::1]:83 v4v6=true v6only=false ns=""`, `[::]:84 v4v6=false v6only=false ns=""`}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("binds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		},
	}, {
		name: "comments and blank lines only",
		src:  "# nothing\n\n\t# still nothing\n   \n",
		check: func(t *testing.T, c *Config) {
			if len(c.Frontends)+len(c.Backends)+len(c.Namespaces) != 0 {
				t.Fatalf("config = %+v", *c)
			}
		},
	}, {
		name: "CRLF line ends and quoted names",
		src:  "frontend \"f1\"\r\n\tbind '10.0.0.1:80'\r\n\tdefault_backend b\"1\"\r\nbackend 'b1'\r\n",
		check: func(t *testing.T, c *Config) {
			if c.Frontends[0].Name != "f1" || c.Frontends[0].DefaultBackend != "b1" || c.Backends[0].Name != "b1" {
				t.Fatalf("config = %+v %+v", c.Frontends[0], c.Backends[0])
			}
			if c.Frontends[0].Binds[0].Pos.Line != 2 {
				t.Fatalf("bind pos = %v", c.Frontends[0].Binds[0].Pos)
			}
		},
	}, {
		name: "built-in defaults",
		src:  "backend b\n\tserver s 10.0.0.1:80\n",
		check: func(t *testing.T, c *Config) {
			b := c.Backends[0]
			if b.Balance != BalanceRoundRobin || b.ConnectTimeout != 0 || b.Source.IsValid() || b.UseSrcClientIP {
				t.Fatalf("backend = %+v", b)
			}
			s := b.Servers[0]
			if s.Inter != 2*time.Second || s.Rise != 2 || s.Fall != 3 || s.Weight != 1 || s.Check || s.SendProxy != 0 {
				t.Fatalf("server = %+v", s)
			}
		},
	}, {
		name: "listen makes a frontend and a backend",
		src:  "listen l1\n\tbind :80\n\tbalance source\n\tserver s 10.0.0.1\n",
		check: func(t *testing.T, c *Config) {
			f, b := c.Frontends[0], c.Backends[0]
			if !f.Listen || !b.Listen || f.Name != "l1" || b.Name != "l1" || f.DefaultBackend != "l1" ||
				f.Pos != b.Pos || f.Pos != (Pos{File: "t.cfg", Line: 1}) || b.Balance != BalanceSource || len(b.Servers) != 1 {
				t.Fatalf("frontend %+v backend %+v", f, b)
			}
		},
	}, {
		name: "listen default_backend switches to another backend",
		src:  "listen l1\n\tbind :80\n\tdefault_backend b2\nbackend b2\n",
		check: func(t *testing.T, c *Config) {
			if c.Frontends[0].DefaultBackend != "b2" {
				t.Fatalf("DefaultBackend = %q", c.Frontends[0].DefaultBackend)
			}
		},
	}, {
		name: "defaults apply to following proxies and a new defaults resets",
		src: "defaults\n\ttimeout client 5s\n\ttimeout server 6s\n\tmaxconn 7\n\tbalance leastconn\n" +
			"frontend f1\n\tbind :80\n\tdefault_backend b1\nbackend b1\n" +
			"defaults\n\ttimeout connect 1s\n" +
			"frontend f2\n\tbind :81\n\tdefault_backend b2\nbackend b2\n",
		check: func(t *testing.T, c *Config) {
			f1, f2, b1, b2 := c.Frontends[0], c.Frontends[1], c.Backends[0], c.Backends[1]
			if f1.ClientTimeout != 5*time.Second || f1.MaxConn != 7 || b1.ServerTimeout != 6*time.Second ||
				b1.Balance != BalanceLeastConn || b1.ConnectTimeout != 0 {
				t.Fatalf("first defaults not applied: %+v %+v", f1, b1)
			}
			if f2.ClientTimeout != 0 || f2.MaxConn != 0 || b2.ServerTimeout != 0 ||
				b2.Balance != BalanceRoundRobin || b2.ConnectTimeout != time.Second {
				t.Fatalf("second defaults did not reset: %+v %+v", f2, b2)
			}
		},
	}, {
		name: "proxy settings override defaults",
		src: "defaults\n\ttimeout connect 1s\n\tsource 0.0.0.0 usesrc clientip\n\tmaxconn 10\n" +
			"backend b1\n\ttimeout connect 2s\n\tsource 10.0.0.1\n" +
			"frontend f1\n\tbind :80\n\tmaxconn 20\n\tdefault_backend b1\n",
		check: func(t *testing.T, c *Config) {
			b := c.Backends[0]
			if b.ConnectTimeout != 2*time.Second || b.UseSrcClientIP || b.Source != addr("10.0.0.1") {
				t.Fatalf("backend = %+v", b)
			}
			if c.Frontends[0].MaxConn != 20 {
				t.Fatalf("frontend = %+v", c.Frontends[0])
			}
		},
	}, {
		name: "default-server layers: defaults, backend, server",
		src: "defaults\n\tdefault-server check weight 5 namespace n1 send-proxy-v2\n" +
			"backend b1\n" +
			"\tserver s0 10.0.0.1\n" +
			"\tdefault-server weight 7 fall 9\n" +
			"\tserver s1 10.0.0.1 namespace * send-proxy\n" +
			"\tserver s2 10.0.0.2 namespace n2 weight 0\n" +
			"backend b2\n\tserver s3 10.0.0.3 namespace * namespace n3\n",
		check: func(t *testing.T, c *Config) {
			s := c.Backends[0].Servers
			if !s[0].Check || s[0].Weight != 5 || s[0].Namespace != "n1" || s[0].SendProxy != 2 || s[0].Fall != 3 {
				t.Errorf("s0 = %+v", s[0])
			}
			if !s[1].Check || s[1].Weight != 7 || s[1].Fall != 9 || s[1].Namespace != "" || !s[1].ClientNamespace || s[1].SendProxy != 1 {
				t.Errorf("s1 = %+v", s[1])
			}
			if s[2].Weight != 0 || s[2].Namespace != "n2" || s[2].ClientNamespace {
				t.Errorf("s2 = %+v", s[2])
			}
			// b2 starts again from the defaults section, not from b1.
			s3 := c.Backends[1].Servers[0]
			if s3.Weight != 5 || s3.Fall != 3 || s3.Namespace != "n3" || s3.ClientNamespace {
				t.Errorf("s3 = %+v", s3)
			}
		},
	}, {
		name: "all balance algorithms and timeouts in listen",
		src: "listen l1\n\tbind :1\n\tbalance first\n\ttimeout client 1\n\ttimeout client-fin 2\n" +
			"\ttimeout connect 3\n\ttimeout server 4\n\ttimeout server-fin 5\n\ttimeout check 6us\n",
		check: func(t *testing.T, c *Config) {
			f, b := c.Frontends[0], c.Backends[0]
			ms := time.Millisecond
			if f.ClientTimeout != ms || f.ClientFinTimeout != 2*ms || b.ConnectTimeout != 3*ms ||
				b.ServerTimeout != 4*ms || b.ServerFinTimeout != 5*ms || b.CheckTimeout != 6*time.Microsecond ||
				b.Balance != BalanceFirst {
				t.Fatalf("frontend %+v backend %+v", f, b)
			}
		},
	}, {
		name: "same address in different namespaces",
		src: "frontend f1\n\tbind :80\n\tbind :80 namespace a\n\tbind :80 namespace b\n\tbind [::]:80 v6only\n\tdefault_backend b1\n" +
			"backend b1\n",
		check: func(t *testing.T, c *Config) {
			if len(c.Frontends[0].Binds) != 4 {
				t.Fatalf("binds = %+v", c.Frontends[0].Binds)
			}
		},
	}, {
		name: "frontend and backend may share a name",
		src:  "frontend web\n\tbind :80\n\tdefault_backend web\nbackend web\n",
		check: func(t *testing.T, c *Config) {
			if c.Frontends[0].Name != "web" || c.Backends[0].Name != "web" {
				t.Fatalf("config = %+v", *c)
			}
		},
	}, {
		name: "several global and namespace_list sections",
		src:  "global\n\tmaxconn 1\nnamespace_list\n\tnamespace b\nglobal\n\tmaxconn 2\nnamespace_list\n\tnamespace a\n",
		check: func(t *testing.T, c *Config) {
			if c.Global.MaxConn != 2 || len(c.Namespaces) != 2 || !reflect.DeepEqual(c.NamespaceNames(), []string{"a", "b"}) {
				t.Fatalf("config = %+v", *c)
			}
		},
	}, {
		name: "named defaults and backend without servers",
		src:  "defaults tcp-defaults\n\tmode tcp\nbackend empty\n",
		check: func(t *testing.T, c *Config) {
			if len(c.Backends) != 1 || len(c.Backends[0].Servers) != 0 {
				t.Fatalf("config = %+v", *c)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, "t.cfg", tt.src))
		})
	}
}

func TestParseEnvironment(t *testing.T) {
	t.Setenv("NSPROXY_TEST_ADDR", "10.9.8.7")
	t.Setenv("NSPROXY_TEST_NS", "blue")
	src := `frontend f1
	bind "${NSPROXY_TEST_ADDR}:${NSPROXY_TEST_PORT-8443}" namespace "$NSPROXY_TEST_NS"
	default_backend b1
backend b1
	server s1 '$NSPROXY_TEST_ADDR'
`
	_, err := Parse("env.cfg", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `env.cfg:5: server "s1" in backend "b1": invalid address "$NSPROXY_TEST_ADDR"`) {
		t.Fatalf("single quotes must not expand variables; got %v", err)
	}
	c := mustParse(t, "env.cfg", strings.Replace(src, `'$NSPROXY_TEST_ADDR'`, `"$NSPROXY_TEST_ADDR"`, 1))
	b := c.Frontends[0].Binds[0]
	if b.Addr != addrPort("10.9.8.7:8443") || b.Namespace != "blue" || c.Backends[0].Servers[0].Addr != addr("10.9.8.7") {
		t.Fatalf("bind %+v server %+v", b, c.Backends[0].Servers[0])
	}
}

// Snippets wrapping one line into a complete, otherwise valid config.
func inBackend(line string) string { return "backend b1\n\t" + line + "\n" } // line 2
func inFrontend(line string) string { // line 4
	return "frontend f1\n\tbind :80\n\tdefault_backend b1\n\t" + line + "\nbackend b1\n"
}
func inListen(line string) string { return "listen l1\n\tbind :80\n\t" + line + "\n" } // line 3
func frontendWith(lines ...string) string { // lines start at 2
	return "frontend f1\n\t" + strings.Join(lines, "\n\t") + "\nbackend b1\n"
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the error text
		is   error    // the sentinel of the first problem
		n    int      // the number of problems; 0 means 1
	}{
		// Lexing.
		{name: "unterminated double quote", src: inBackend(`server s1 "10.0.0.1:80`),
			want: []string{"t.cfg:2: unterminated double quote"}, is: ErrSyntax},
		{name: "unterminated single quote", src: inBackend(`server s1 '10.0.0.1:80`),
			want: []string{"t.cfg:2: unterminated single quote"}, is: ErrSyntax},
		{name: "bad variable reference", src: inBackend(`server s1 "$1"`),
			want: []string{`t.cfg:2: "$" must start a variable name`}, is: ErrSyntax},
		{name: "unterminated variable brace", src: inBackend(`server s1 "${HOST"`),
			want: []string{`t.cfg:2: unterminated "${"`}, is: ErrSyntax},
		{name: "bad hex escape", src: inBackend(`server s1 \xZZ`),
			want: []string{`t.cfg:2: invalid \x escape`}, is: ErrSyntax},
		{name: "broken section header still checks its lines",
			src:  "backend \"b1\n\tserver s1 10.0.0.1 bogus\n\tbind :80\n",
			want: []string{"t.cfg:1: unterminated double quote", `t.cfg:2: unsupported option "bogus"`, `t.cfg:3: unknown keyword "bind" in backend`},
			is:   ErrSyntax, n: 3},

		// Sections.
		{name: "keyword outside any section", src: "maxconn 10\n",
			want: []string{`t.cfg:1: keyword "maxconn" outside any section; start a section first`}, is: ErrSyntax},
		{name: "every line outside a section is reported", src: "\nbind :80\nserver s 10.0.0.1\nglobal\n",
			want: []string{`t.cfg:2: keyword "bind" outside`, `t.cfg:3: keyword "server" outside`}, is: ErrSyntax, n: 2},
		{name: "global with argument", src: "global extra\n",
			want: []string{`t.cfg:1: global takes no argument; remove "extra"`}, is: ErrSyntax},
		{name: "namespace_list with argument", src: "namespace_list netns1\n",
			want: []string{`t.cfg:1: namespace_list takes no argument; remove "netns1"`}, is: ErrSyntax},
		{name: "defaults with two names", src: "defaults a b\n",
			want: []string{`t.cfg:1: unexpected "b" after defaults "a"; write: defaults [NAME]`}, is: ErrSyntax},
		{name: "defaults with invalid name", src: "defaults a/b\n",
			want: []string{`t.cfg:1: invalid defaults name "a/b"; names are made of`}, is: ErrInvalid},
		{name: "frontend without name", src: "frontend\n\tbind :80\n",
			want: []string{"t.cfg:1: frontend needs a name; write: frontend NAME"}, is: ErrSyntax},
		{name: "listen without name", src: "listen\n",
			want: []string{"t.cfg:1: listen needs a name; write: listen NAME"}, is: ErrSyntax},
		{name: "backend with invalid name still checks its lines", src: "backend b@d\n\tserver s1 10.0.0.1 bogus\n",
			want: []string{`t.cfg:1: invalid backend name "b@d"`, `t.cfg:2: unsupported option "bogus" on server "s1" in backend "b@d"`},
			is:   ErrInvalid, n: 2},
		{name: "frontend from defaults", src: "frontend f1 from d\n\tbind :80\n\tdefault_backend b1\nbackend b1\n",
			want: []string{`t.cfg:1: unexpected "from" after frontend "f1"; write: frontend NAME`}, is: ErrSyntax},
		{name: "unsupported section", src: "userlist users\n\tuser admin password x\nbackend b1\n\toptoin x\n",
			want: []string{`t.cfg:1: section "userlist" is not supported; remove it`, `t.cfg:4: unknown keyword "optoin"`},
			is:   ErrUnsupported, n: 2},

		// Unknown and unsupported keywords.
		{name: "unknown keyword in backend", src: inBackend("optoin tcplog"),
			want: []string{`t.cfg:2: unknown keyword "optoin" in backend "b1"; supported: mode, balance, timeout, server, source, default-server`},
			is:   ErrSyntax},
		{name: "unknown keyword in frontend", src: inFrontend("server s1 10.0.0.1"),
			want: []string{`t.cfg:4: unknown keyword "server" in frontend "f1"; supported: mode, bind, default_backend, maxconn, timeout`},
			is:   ErrSyntax},
		{name: "unknown keyword in listen", src: inListen("log global"),
			want: []string{`t.cfg:3: unknown keyword "log" in listen "l1"; supported: mode, bind, default_backend, maxconn, timeout, option, trusted-proxies, balance, server, source, default-server`},
			is:   ErrSyntax},
		{name: "unsupported option", src: inListen("option tcplog"),
			want: []string{`t.cfg:3: unsupported option "tcplog" in listen "l1"; supported: lenient-netns-tlv`},
			is:   ErrUnsupported},
		{name: "option without name", src: inListen("option"),
			want: []string{`t.cfg:3: option in listen "l1" takes 1 argument(s), got 0; write: option NAME`},
			is:   ErrSyntax},
		{name: "trusted-proxies empty", src: inListen("trusted-proxies"),
			want: []string{`t.cfg:3: trusted-proxies in listen "l1" needs at least one network`},
			is:   ErrSyntax},
		{name: "trusted-proxies bad", src: inListen("trusted-proxies 10.0.0.0/8 nowhere"),
			want: []string{`t.cfg:3: trusted-proxies of listen "l1": invalid network "nowhere"; write an address or CIDR`},
			is:   ErrInvalid},
		{name: "nbthread without value", src: "global\n\tnbthread\n",
			want: []string{`t.cfg:2: nbthread in global takes 1 argument(s), got 0; write: nbthread N`},
			is:   ErrSyntax},
		{name: "nbthread zero", src: "global\n\tnbthread 0\n",
			want: []string{`t.cfg:2: invalid nbthread "0" in global; write a whole number of threads from 1 to 1024 (leave it out for one per CPU)`},
			is:   ErrInvalid},
		{name: "nbthread not a number", src: "global\n\tnbthread all\n",
			want: []string{`t.cfg:2: invalid nbthread "all" in global`},
			is:   ErrInvalid},
		{name: "nbthread too large", src: "global\n\tnbthread 1025\n",
			want: []string{`t.cfg:2: invalid nbthread "1025" in global`},
			is:   ErrInvalid},
		{name: "nbthread in a frontend", src: inFrontend("nbthread 2"),
			want: []string{`t.cfg:4: unknown keyword "nbthread" in frontend "f1"`},
			is:   ErrSyntax},
		{name: "proxy header size without value", src: "global\n\ttune.proxy-header-max-size\n",
			want: []string{`t.cfg:2: tune.proxy-header-max-size in global takes 1 argument(s), got 0`},
			is:   ErrSyntax},
		{name: "proxy header size too small", src: "global\n\ttune.proxy-header-max-size 8\n",
			want: []string{`t.cfg:2: invalid tune.proxy-header-max-size "8"; write a number of bytes from 16 to 65551`},
			is:   ErrInvalid},
		{name: "proxy-header timeout in backend", src: "backend b\n\ttimeout proxy-header 1s\n",
			want: []string{`t.cfg:2: timeout proxy-header does not apply to backend "b"; move it to a frontend, listen or defaults section`},
			is:   ErrSyntax},
		{name: "unknown keyword in global", src: "global\n\tdaemon\n",
			want: []string{`t.cfg:2: unknown keyword "daemon" in global; supported: maxconn, nbthread, tune.proxy-header-max-size`}, is: ErrSyntax},
		{name: "unknown keyword in defaults", src: "defaults\n\tbind :80\n",
			want: []string{`t.cfg:2: unknown keyword "bind" in defaults; supported: mode, balance, timeout, maxconn, source, default-server, option`},
			is:   ErrSyntax},
		{name: "unknown keyword in named defaults", src: "defaults d1\n\tlog global\n",
			want: []string{`t.cfg:2: unknown keyword "log" in defaults "d1"`}, is: ErrSyntax},
		{name: "unknown keyword in namespace_list", src: "namespace_list\n\tnetns netns1\n",
			want: []string{`t.cfg:2: unknown keyword "netns" in namespace_list; supported: namespace`}, is: ErrSyntax},
		{name: "use_backend in frontend", src: inFrontend("use_backend b2 if { src 10.0.0.0/8 }"),
			want: []string{`t.cfg:4: use_backend in frontend "f1" is not supported yet; route with default_backend`}, is: ErrUnsupported},
		{name: "use_backend in listen", src: inListen("use_backend b2"),
			want: []string{`t.cfg:3: use_backend in listen "l1" is not supported yet`}, is: ErrUnsupported},
		{name: "use_backend in backend is unknown", src: inBackend("use_backend b2"),
			want: []string{`t.cfg:2: unknown keyword "use_backend" in backend "b1"`}, is: ErrSyntax},
		{name: "use_backend in defaults is unknown", src: "defaults\n\tuse_backend b2\n",
			want: []string{`t.cfg:2: unknown keyword "use_backend" in defaults`}, is: ErrSyntax},

		// mode, maxconn, namespace_list entries, balance.
		{name: "mode http", src: inBackend("mode http"),
			want: []string{`t.cfg:2: mode "http" in backend "b1": only mode tcp is supported`}, is: ErrUnsupported},
		{name: "mode http in defaults", src: "defaults\n\tmode http\n",
			want: []string{`t.cfg:2: mode "http" in defaults: only mode tcp is supported`}, is: ErrUnsupported},
		{name: "mode without value", src: inBackend("mode"),
			want: []string{`t.cfg:2: mode in backend "b1" takes 1 argument(s), got 0; write: mode tcp`}, is: ErrSyntax},
		{name: "maxconn zero", src: inFrontend("maxconn 0"),
			want: []string{`t.cfg:4: invalid maxconn "0" in frontend "f1"; write a whole number from 1 to 2147483647`}, is: ErrInvalid},
		{name: "maxconn negative", src: "defaults\n\tmaxconn -1\n",
			want: []string{`t.cfg:2: invalid maxconn "-1" in defaults`}, is: ErrInvalid},
		{name: "maxconn not a number", src: "global\n\tmaxconn lots\n",
			want: []string{`t.cfg:2: invalid maxconn "lots" in global`}, is: ErrInvalid},
		{name: "maxconn too large", src: "global\n\tmaxconn 2147483648\n",
			want: []string{`t.cfg:2: invalid maxconn "2147483648" in global`}, is: ErrInvalid},
		{name: "maxconn without value", src: "global\n\tmaxconn\n",
			want: []string{`t.cfg:2: maxconn in global takes 1 argument(s), got 0; write: maxconn N`}, is: ErrSyntax},
		{name: "namespace name invalid", src: "namespace_list\n\tnamespace ../etc\n",
			want: []string{`t.cfg:2: invalid namespace name "../etc" in namespace_list; namespace names are`}, is: ErrInvalid},
		{name: "namespace with two names", src: "namespace_list\n\tnamespace a b\n",
			want: []string{`t.cfg:2: namespace in namespace_list takes 1 argument(s), got 2; write: namespace NAME`}, is: ErrSyntax},
		{name: "namespace listed twice", src: "namespace_list\n\tnamespace a\n\tnamespace a\n",
			want: []string{`t.cfg:3: namespace "a" is listed twice in namespace_list (first at t.cfg:2); remove one`}, is: ErrDuplicate},
		{name: "balance unsupported", src: inBackend("balance static-rr"),
			want: []string{`t.cfg:2: balance in backend "b1": unsupported algorithm "static-rr"; supported: roundrobin, leastconn, source, first`},
			is:   ErrUnsupported},
		{name: "balance with argument", src: inBackend("balance url_param id"),
			want: []string{`t.cfg:2: balance in backend "b1" takes 1 argument(s), got 2`}, is: ErrSyntax},

		// timeout.
		{name: "timeout unknown kind", src: inBackend("timeout queue 5s"),
			want: []string{`t.cfg:2: unsupported timeout "queue" in backend "b1"; supported: client, client-fin, connect, server, server-fin, check`},
			is:   ErrUnsupported},
		{name: "timeout server in frontend", src: inFrontend("timeout server 5s"),
			want: []string{`t.cfg:4: timeout server does not apply to frontend "f1"; move it to a backend, listen or defaults section`},
			is:   ErrSyntax},
		{name: "timeout client in backend", src: inBackend("timeout client 5s"),
			want: []string{`t.cfg:2: timeout client does not apply to backend "b1"; move it to a frontend, listen or defaults section`},
			is:   ErrSyntax},
		{name: "timeout bad unit", src: inBackend("timeout connect 5x"),
			want: []string{`t.cfg:2: timeout connect in backend "b1": invalid duration "5x"`}, is: ErrInvalid},
		{name: "timeout zero", src: inListen("timeout check 0"),
			want: []string{`t.cfg:3: timeout check in listen "l1": duration "0" must be greater than 0`}, is: ErrInvalid},
		{name: "timeout too large", src: inFrontend("timeout client 30d"),
			want: []string{`t.cfg:4: timeout client in frontend "f1": duration "30d" is too large`}, is: ErrInvalid},
		{name: "timeout without duration", src: inBackend("timeout connect"),
			want: []string{`t.cfg:2: timeout in backend "b1" takes 2 argument(s), got 1; write: timeout KIND DURATION`}, is: ErrSyntax},

		// source.
		{name: "source without address", src: inBackend("source"),
			want: []string{`t.cfg:2: source in backend "b1" takes 1 argument(s), got 0; write: source ADDR [usesrc clientip]`}, is: ErrSyntax},
		{name: "source with port", src: inBackend("source 10.0.0.1:2000"),
			want: []string{`t.cfg:2: source in backend "b1": address "10.0.0.1:2000": source ports are not supported`}, is: ErrUnsupported},
		{name: "source with zone", src: inBackend("source fe80::1%eth0"),
			want: []string{`t.cfg:2: source in backend "b1": address "fe80::1%eth0": IPv6 zones are not supported`}, is: ErrUnsupported},
		{name: "source host name", src: inBackend("source gateway"),
			want: []string{`t.cfg:2: source in backend "b1": invalid address "gateway"; write an IP literal`}, is: ErrInvalid},
		{name: "source interface option", src: inBackend("source 10.0.0.1 interface eth0"),
			want: []string{`t.cfg:2: unsupported source option "interface" in backend "b1"; supported: usesrc clientip`}, is: ErrUnsupported},
		{name: "usesrc client", src: inBackend("source 0.0.0.0 usesrc client"),
			want: []string{`t.cfg:2: "usesrc client" in backend "b1" is not supported; only usesrc clientip is`}, is: ErrUnsupported},
		{name: "usesrc address", src: "defaults\n\tsource 0.0.0.0 usesrc 10.0.0.9\n",
			want: []string{`t.cfg:2: "usesrc 10.0.0.9" in defaults is not supported`}, is: ErrUnsupported},
		{name: "usesrc clientip with extra word", src: inBackend("source 0.0.0.0 usesrc clientip now"),
			want: []string{`t.cfg:2: "usesrc clientip now" in backend "b1" is not supported`}, is: ErrUnsupported},
		{name: "usesrc clientip with a real source", src: inBackend("source 10.0.0.1 usesrc clientip"),
			want: []string{`t.cfg:2: source in backend "b1": usesrc clientip needs source 0.0.0.0, not 10.0.0.1; write source 0.0.0.0 usesrc clientip`},
			is:   ErrUnsupported},

		// bind.
		{name: "bind without address", src: frontendWith("bind", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1" takes 1 argument(s), got 0`}, is: ErrSyntax},
		{name: "bind without port", src: frontendWith("bind 10.0.0.1", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": address "10.0.0.1" has no port`}, is: ErrInvalid},
		{name: "bind host name", src: frontendWith("bind localhost:80", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": invalid address "localhost:80"; use an IP literal`}, is: ErrInvalid},
		{name: "bind with zone", src: frontendWith("bind [fe80::1%eth0]:80", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": address "[fe80::1%eth0]:80": IPv6 zones are not supported`}, is: ErrUnsupported},
		{name: "bind port range", src: frontendWith("bind :8000-8010", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": address ":8000-8010": port ranges are not supported`}, is: ErrUnsupported},
		{name: "bind ssl", src: frontendWith("bind :443 ssl crt /etc/x.pem", "default_backend b1"),
			want: []string{`t.cfg:2: unsupported bind option "ssl" in frontend "f1"; supported: namespace, accept-proxy, v4v6, v6only`}, is: ErrUnsupported},
		{name: "bind v4v6 on IPv4", src: frontendWith("bind 0.0.0.0:80 v4v6", "default_backend b1"),
			want: []string{`t.cfg:2: bind 0.0.0.0:80 in frontend "f1": v4v6 applies to IPv6 addresses; for both families write bind [::]:80 v4v6`}, is: ErrInvalid},
		{name: "bind v6only on IPv4", src: frontendWith("bind 127.0.0.1:80 v6only", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": v6only applies to IPv6 addresses (127.0.0.1:80 is IPv4); remove it`}, is: ErrInvalid},
		{name: "bind v4v6 and v6only", src: frontendWith("bind [::]:80 v4v6 v6only", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": v4v6 and v6only contradict each other; keep one (without either, :: follows net.ipv6.bindv6only)`}, is: ErrInvalid},
		{name: "bind interface", src: frontendWith("bind :80 namespace n1 interface eth0", "default_backend b1"),
			want: []string{`t.cfg:2: unsupported bind option "interface"`}, is: ErrUnsupported},
		{name: "bind namespace without name", src: frontendWith("bind :80 namespace", "default_backend b1"),
			want: []string{`t.cfg:2: bind option namespace in frontend "f1" needs a value; write: namespace NAME`}, is: ErrSyntax},
		{name: "bind namespace star", src: frontendWith("bind :80 namespace *", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": namespace * is only for servers`}, is: ErrInvalid},
		{name: "bind namespace invalid", src: frontendWith("bind :80 namespace a/b", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": invalid namespace name "a/b"`}, is: ErrInvalid},
		{name: "bind with several problems", src: frontendWith("bind host:80 namespace .. ssl", "default_backend b1"),
			want: []string{`t.cfg:2: bind in frontend "f1": invalid address`, `t.cfg:2: bind in frontend "f1": invalid namespace name ".."`, `t.cfg:2: unsupported bind option "ssl"`},
			is:   ErrInvalid, n: 3},
		{name: "bind used twice across frontends",
			src: "frontend f1\n\tbind :80 namespace n1\n\tdefault_backend b1\n" +
				"frontend f2\n\tbind 0.0.0.0:80 namespace n1\n\tdefault_backend b1\nbackend b1\n",
			want: []string{`t.cfg:5: bind 0.0.0.0:80 in namespace "n1" of frontend "f2" is already bound by frontend "f1" at t.cfg:2; use another address, port or namespace`},
			is:   ErrDuplicate},
		{name: "bind used twice in one frontend", src: frontendWith("bind :80", "bind *:80", "default_backend b1"),
			want: []string{`t.cfg:3: bind 0.0.0.0:80 in the default namespace of frontend "f1" is already bound by frontend "f1" at t.cfg:2`},
			is:   ErrDuplicate},
		// A wildcard takes the port on every address of its family: the
		// second bind would fail with EADDRINUSE when the daemon starts.
		{name: "bind inside a wildcard of its family", src: frontendWith("bind 0.0.0.0:80", "bind 127.0.0.1:80", "default_backend b1"),
			want: []string{`t.cfg:3: bind 127.0.0.1:80 in the default namespace of frontend "f1" overlaps bind 0.0.0.0:80 of frontend "f1" at t.cfg:2`},
			is:   ErrDuplicate},
		{name: "bind IPv4 wildcard under v4v6",
			src: "frontend f1\n\tbind [::]:80 v4v6 namespace n1\n\tdefault_backend b1\n" +
				"frontend f2\n\tbind 0.0.0.0:80 namespace n1\n\tdefault_backend b1\nbackend b1\n",
			want: []string{`t.cfg:5: bind 0.0.0.0:80 in namespace "n1" of frontend "f2" overlaps bind [::]:80 of frontend "f1" at t.cfg:2`},
			is:   ErrDuplicate},

		// default_backend and required lines.
		{name: "frontend without bind", src: frontendWith("default_backend b1"),
			want: []string{`t.cfg:1: frontend "f1" has no bind line; add bind ADDR:PORT`}, is: ErrIncomplete},
		{name: "listen without bind", src: "listen l1\n\tserver s1 10.0.0.1:80\n",
			want: []string{`t.cfg:1: listen "l1" has no bind line`}, is: ErrIncomplete},
		{name: "frontend without default_backend", src: frontendWith("bind :80"),
			want: []string{`t.cfg:1: frontend "f1" has no default_backend; add default_backend NAME`}, is: ErrIncomplete},
		{name: "empty frontend", src: "frontend f1\n",
			want: []string{`t.cfg:1: frontend "f1" has no bind line`, `t.cfg:1: frontend "f1" has no default_backend`}, is: ErrIncomplete, n: 2},
		{name: "default_backend with two names", src: frontendWith("bind :80", "default_backend b1 b2"),
			want: []string{`t.cfg:3: default_backend in frontend "f1" takes 1 argument(s), got 2; write: default_backend NAME`}, is: ErrSyntax},
		{name: "default_backend invalid name", src: frontendWith("bind :80", "default_backend b/1"),
			want: []string{`t.cfg:3: invalid default_backend name "b/1" in frontend "f1"`}, is: ErrInvalid},
		{name: "default_backend not defined", src: "frontend f1\n\tbind :80\n\tdefault_backend nope\n",
			want: []string{`t.cfg:1: frontend "f1": default_backend "nope" is not defined; add a backend or listen section of that name, or fix the name`}, is: ErrUnknownBackend},
		{name: "default_backend names a frontend",
			src:  "frontend f1\n\tbind :80\n\tdefault_backend f2\nfrontend f2\n\tbind :81\n\tdefault_backend f2\n",
			want: []string{`t.cfg:1: frontend "f1": default_backend "f2" names a frontend (at t.cfg:4), not a backend`, `t.cfg:4: frontend "f2": default_backend "f2" names a frontend`},
			is:   ErrUnknownBackend, n: 2},
		{name: "duplicate frontend",
			src:  "frontend f1\n\tbind :80\n\tdefault_backend b1\nfrontend f1\n\tbind :81\n\tdefault_backend b1\nbackend b1\n",
			want: []string{`t.cfg:4: duplicate frontend "f1", first defined at t.cfg:1 as frontend "f1"; rename one of them`}, is: ErrDuplicate},
		{name: "listen and backend with the same name", src: "listen x\n\tbind :80\nbackend x\n",
			want: []string{`t.cfg:3: duplicate backend "x", first defined at t.cfg:1 as listen "x"`}, is: ErrDuplicate},
		{name: "listen and frontend with the same name", src: "frontend x\n\tbind :81\n\tdefault_backend x\nlisten x\n\tbind :80\n",
			want: []string{`t.cfg:4: duplicate listen "x", first defined at t.cfg:1 as frontend "x"`}, is: ErrDuplicate},

		// server and default-server.
		{name: "server without address", src: inBackend("server s1"),
			want: []string{`t.cfg:2: server in backend "b1" needs a name and an address; write: server NAME ADDR[:PORT] [options]`}, is: ErrSyntax},
		{name: "server invalid name", src: inBackend("server s/1 10.0.0.1"),
			want: []string{`t.cfg:2: invalid server name "s/1" in backend "b1"`}, is: ErrInvalid},
		{name: "server bad port", src: inBackend("server s1 10.0.0.1:99999"),
			want: []string{`t.cfg:2: server "s1" in backend "b1": address "10.0.0.1:99999": invalid port "99999"`}, is: ErrInvalid},
		{name: "server bare ipv6", src: inBackend("server s1 fd00::1 check"),
			want: []string{`t.cfg:2: server "s1" in backend "b1": address "fd00::1": the last colon of an IPv6 address separates the port; write [fd00::1] for no port`},
			is:   ErrInvalid},
		{name: "server unsupported option", src: inBackend("server s1 10.0.0.1 ssl verify none"),
			want: []string{`t.cfg:2: unsupported option "ssl" on server "s1" in backend "b1"; supported: check, inter, rise, fall, weight, backup, disabled, send-proxy, send-proxy-v2, namespace`},
			is:   ErrUnsupported},
		{name: "server option without value", src: inBackend("server s1 10.0.0.1 weight"),
			want: []string{`t.cfg:2: option weight on server "s1" in backend "b1" needs a value; write: weight VALUE`}, is: ErrSyntax},
		{name: "server namespace invalid", src: inBackend("server s1 10.0.0.1 namespace .."),
			want: []string{`t.cfg:2: server "s1" in backend "b1": invalid namespace name ".."`, "or * for the client's namespace"}, is: ErrInvalid},
		{name: "server inter zero", src: inBackend("server s1 10.0.0.1 inter 0"),
			want: []string{`t.cfg:2: inter on server "s1" in backend "b1": duration "0" must be greater than 0`}, is: ErrInvalid},
		{name: "server rise zero", src: inBackend("server s1 10.0.0.1 rise 0"),
			want: []string{`t.cfg:2: invalid rise "0" on server "s1" in backend "b1"; write a whole number from 1 to 2147483647`}, is: ErrInvalid},
		{name: "server fall not a number", src: inBackend("server s1 10.0.0.1 fall x"),
			want: []string{`t.cfg:2: invalid fall "x" on server "s1"`}, is: ErrInvalid},
		{name: "server weight too large", src: inBackend("server s1 10.0.0.1 weight 257"),
			want: []string{`t.cfg:2: invalid weight "257" on server "s1" in backend "b1"; write a whole number from 0 to 256`}, is: ErrInvalid},
		{name: "server with several problems", src: inBackend("server s/1 host:80 weight 999 rise 0"),
			want: []string{`invalid server name "s/1"`, `server "s/1" in backend "b1": invalid address "host:80"`, `invalid weight "999"`, `invalid rise "0"`},
			is:   ErrInvalid, n: 4},
		{name: "server name used twice", src: "backend b1\n\tserver s1 10.0.0.1\n\tserver s1 10.0.0.2\n",
			want: []string{`t.cfg:3: duplicate server "s1" in backend "b1", first defined at t.cfg:2; rename one of them`}, is: ErrDuplicate},
		{name: "default-server unsupported option", src: inBackend("default-server maxconn 10"),
			want: []string{`t.cfg:2: unsupported option "maxconn" on default-server in backend "b1"`}, is: ErrUnsupported},
		{name: "default-server bad value in defaults", src: "defaults\n\tdefault-server inter -1\n",
			want: []string{`t.cfg:2: inter on default-server in defaults: invalid duration "-1"`}, is: ErrInvalid},
		{name: "bad default-server value does not spoil later servers",
			src:  "backend b1\n\tdefault-server weight 300 rise x fall 0 inter 0\n\tserver s1 10.0.0.1\n",
			want: []string{`t.cfg:2: invalid weight "300"`, `t.cfg:2: invalid rise "x"`, `t.cfg:2: invalid fall "0"`, `t.cfg:2: inter on default-server`},
			is:   ErrInvalid, n: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.cfg", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors containing %q; config %+v", tt.want, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			text := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("error does not contain %q; got:\n%s", w, text)
				}
			}
			ps := problems(err)
			want := max(tt.n, 1)
			if len(ps) != want {
				t.Errorf("got %d problems, want %d:\n%s", len(ps), want, text)
			}
			if !errors.Is(ps[0], tt.is) {
				t.Errorf("first problem %q is not %v", ps[0], tt.is)
			}
			for _, p := range ps {
				var e *Error
				if !errors.As(p, &e) || e.Pos.File != "t.cfg" || e.Pos.Line < 1 || e.Err == nil {
					t.Errorf("problem %q is not an *Error with a position in t.cfg", p)
				}
				if strings.Count(p.Error(), "\n") != 0 {
					t.Errorf("problem %q spans several lines", p)
				}
			}
		})
	}
}

func TestParseErrorWithoutFileName(t *testing.T) {
	_, err := Parse("", []byte("global\n\tdaemon\n"))
	if err == nil || !strings.HasPrefix(err.Error(), `line 2: unknown keyword "daemon" in global`) {
		t.Fatalf("got %v", err)
	}
}
