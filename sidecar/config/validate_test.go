package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validConfig is a complete Config built in code, as another loader (YAML
// manifests) would build it.
func validConfig() *Config {
	at := func(line int) Pos { return Pos{File: "m.yaml", Line: line} }
	return &Config{
		Global:     Global{MaxConn: 10},
		Namespaces: []NamespaceRef{{Name: "n1", Pos: at(1)}},
		Frontends: []*Frontend{{
			Name: "f1", Pos: at(2), DefaultBackend: "b1",
			Binds: []Bind{{Pos: at(3), Addr: netip.MustParseAddrPort("0.0.0.0:80"), Namespace: "n1"}},
		}},
		Backends: []*Backend{{
			Name: "b1", Pos: at(4), Balance: BalanceRoundRobin,
			Servers: []*Server{{
				Name: "s1", Pos: at(5), Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, PortMode: PortFixed,
				Inter: time.Second, Rise: 1, Fall: 1, Weight: 1,
			}},
		}},
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
		is     error
	}{
		{"global maxconn negative", func(c *Config) { c.Global.MaxConn = -1 },
			"global maxconn -1 is negative", ErrInvalid},
		{"namespace_list invalid name", func(c *Config) { c.Namespaces[0].Name = "a/b" },
			`m.yaml:1: invalid namespace name "a/b" in namespace_list`, ErrInvalid},
		{"nil frontend", func(c *Config) { c.Frontends = append(c.Frontends, nil) },
			"frontend #1 is nil", ErrInvalid},
		{"frontend invalid name", func(c *Config) { c.Frontends[0].Name = "" },
			`m.yaml:2: frontend "": invalid name`, ErrInvalid},
		{"frontend maxconn negative", func(c *Config) { c.Frontends[0].MaxConn = -5 },
			`m.yaml:2: frontend "f1": maxconn -5 is negative`, ErrInvalid},
		{"frontend timeout negative", func(c *Config) { c.Frontends[0].ClientTimeout = -time.Second },
			`m.yaml:2: frontend "f1": timeout client is negative (-1s)`, ErrInvalid},
		{"frontend fin timeout negative", func(c *Config) { c.Frontends[0].ClientFinTimeout = -1 },
			`frontend "f1": timeout client-fin is negative`, ErrInvalid},
		{"bind without address", func(c *Config) { c.Frontends[0].Binds[0].Addr = netip.AddrPort{} },
			`m.yaml:3: bind in frontend "f1": invalid address "invalid AddrPort"`, ErrInvalid},
		{"bind port zero", func(c *Config) { c.Frontends[0].Binds[0].Addr = netip.MustParseAddrPort("1.2.3.4:0") },
			`m.yaml:3: bind in frontend "f1": invalid address "1.2.3.4:0"; write ADDR:PORT`, ErrInvalid},
		{"bind namespace invalid", func(c *Config) { c.Frontends[0].Binds[0].Namespace = ".." },
			`m.yaml:3: bind in frontend "f1": invalid namespace name ".."`, ErrInvalid},
		{"bind with zone", func(c *Config) { c.Frontends[0].Binds[0].Addr = netip.MustParseAddrPort("[fe80::1%eth0]:80") },
			`m.yaml:3: bind in frontend "f1": IPv6 zones are not supported`, ErrInvalid},
		{"backend source with zone", func(c *Config) { c.Backends[0].Source = netip.MustParseAddr("fe80::1%eth0") },
			`m.yaml:4: backend "b1": IPv6 zones are not supported; remove the zone of source "fe80::1%eth0"`, ErrInvalid},
		{"server family differs from the source", func(c *Config) { c.Backends[0].Source = netip.MustParseAddr("fd00::5") },
			`m.yaml:5: server "s1" in backend "b1": address 10.0.0.1 and the backend's source fd00::5 are of different address families`, ErrInvalid},
		{"server with zone", func(c *Config) { c.Backends[0].Servers[0].Addr = netip.MustParseAddr("fe80::1%eth0") },
			`m.yaml:5: server "s1" in backend "b1": IPv6 zones are not supported`, ErrInvalid},
		{"nil backend", func(c *Config) { c.Backends = append([]*Backend{nil}, c.Backends...) },
			"backend #0 is nil", ErrInvalid},
		{"backend invalid name", func(c *Config) { c.Backends = append(c.Backends, &Backend{Name: "a b", Balance: BalanceFirst}) },
			`backend "a b": invalid name`, ErrInvalid},
		{"backend balance empty", func(c *Config) { c.Backends[0].Balance = "" },
			`m.yaml:4: backend "b1": unknown balance algorithm ""`, ErrInvalid},
		{"backend timeout negative", func(c *Config) { c.Backends[0].ConnectTimeout = -1 },
			`backend "b1": timeout connect is negative`, ErrInvalid},
		{"backend server timeout negative", func(c *Config) { c.Backends[0].ServerTimeout = -1 },
			`backend "b1": timeout server is negative`, ErrInvalid},
		{"backend server-fin timeout negative", func(c *Config) { c.Backends[0].ServerFinTimeout = -1 },
			`backend "b1": timeout server-fin is negative`, ErrInvalid},
		{"backend check timeout negative", func(c *Config) { c.Backends[0].CheckTimeout = -1 },
			`backend "b1": timeout check is negative`, ErrInvalid},
		{"usesrc with a real source", func(c *Config) {
			c.Backends[0].UseSrcClientIP, c.Backends[0].Source = true, netip.MustParseAddr("10.0.0.9")
		}, `backend "b1": usesrc clientip needs source 0.0.0.0, not "10.0.0.9"`, ErrInvalid},
		{"nil server", func(c *Config) { c.Backends[0].Servers = append(c.Backends[0].Servers, nil) },
			`m.yaml:4: backend "b1": server #1 is nil`, ErrInvalid},
		{"server invalid name", func(c *Config) { c.Backends[0].Servers[0].Name = "s#1" },
			`m.yaml:5: server "s#1" in backend "b1": invalid name`, ErrInvalid},
		{"server namespace invalid", func(c *Config) { c.Backends[0].Servers[0].Namespace = "." },
			`server "s1" in backend "b1": invalid namespace name "."`, ErrInvalid},
		{"server two namespaces", func(c *Config) {
			c.Backends[0].Servers[0].Namespace, c.Backends[0].Servers[0].ClientNamespace = "n1", true
		}, `server "s1" in backend "b1" has both namespace "n1" and namespace *`, ErrInvalid},
		{"server fixed port zero", func(c *Config) { c.Backends[0].Servers[0].Port = 0 },
			`server "s1" in backend "b1": fixed port 0`, ErrInvalid},
		{"server offset zero", func(c *Config) { c.Backends[0].Servers[0].PortMode = PortOffset },
			`server "s1" in backend "b1": port offset 0 out of range`, ErrInvalid},
		{"server offset too large", func(c *Config) {
			c.Backends[0].Servers[0].PortMode, c.Backends[0].Servers[0].PortOffset = PortOffset, -70000
		}, `port offset -70000 out of range`, ErrInvalid},
		{"server unknown port mode", func(c *Config) { c.Backends[0].Servers[0].PortMode = 7 },
			`server "s1" in backend "b1": unknown port mode 7`, ErrInvalid},
		{"server inter zero", func(c *Config) { c.Backends[0].Servers[0].Inter = 0 },
			`server "s1" in backend "b1": check interval inter 0s must be greater than 0`, ErrInvalid},
		{"server rise zero", func(c *Config) { c.Backends[0].Servers[0].Rise = 0 },
			`rise 0 and fall 1 must be at least 1`, ErrInvalid},
		{"server fall zero", func(c *Config) { c.Backends[0].Servers[0].Fall = 0 },
			`rise 1 and fall 0 must be at least 1`, ErrInvalid},
		{"server weight negative", func(c *Config) { c.Backends[0].Servers[0].Weight = -1 },
			`weight -1 out of range; use 0 to 256`, ErrInvalid},
		{"server weight too large", func(c *Config) { c.Backends[0].Servers[0].Weight = 257 },
			`weight 257 out of range`, ErrInvalid},
		{"server send-proxy version", func(c *Config) { c.Backends[0].Servers[0].SendProxy = 3 },
			`send-proxy version 3; use 0 (none), 1 or 2`, ErrInvalid},
		{"server name twice", func(c *Config) {
			s := *c.Backends[0].Servers[0]
			s.Pos.Line = 6
			c.Backends[0].Servers = append(c.Backends[0].Servers, &s)
		}, `m.yaml:6: duplicate server "s1" in backend "b1", first defined at m.yaml:5`, ErrDuplicate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.is) {
				t.Fatalf("Validate = %v; want %v containing %q", err, tt.is, tt.want)
			}
			if n := len(problems(err)); n != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", n, err)
			}
		})
	}
}

func TestValidateCollectsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Global.MaxConn = -1
	c.Frontends[0].DefaultBackend = ""
	c.Frontends[0].Binds = nil
	c.Backends[0].Servers[0].Weight = 1000
	err := c.Validate()
	for _, w := range []string{"global maxconn", `m.yaml:2: frontend "f1" has no bind line`, `m.yaml:2: frontend "f1" has no default_backend`, "weight 1000"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	if n := len(problems(err)); n != 4 {
		t.Errorf("got %d problems, want 4:\n%v", n, err)
	}
}

func TestValidateNil(t *testing.T) {
	var c *Config
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil Config: Validate = %v", err)
	}
}

func TestNamespaceNames(t *testing.T) {
	c := validConfig()
	c.Namespaces = append(c.Namespaces, NamespaceRef{Name: "z"})
	c.Frontends = append(c.Frontends, nil, &Frontend{Binds: []Bind{{Namespace: "m"}, {}}})
	c.Backends = append(c.Backends, nil, &Backend{Servers: []*Server{
		{Namespace: "a"}, {ClientNamespace: true}, nil, {Namespace: "n1"},
	}})
	if got, want := c.NamespaceNames(), []string{"a", "m", "n1", "z"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("NamespaceNames = %q, want %q", got, want)
	}
	if got := (&Config{}).NamespaceNames(); len(got) != 0 {
		t.Fatalf("empty config: NamespaceNames = %q", got)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Pos: Pos{File: "a.cfg", Line: 3}, Msg: "bad; fix it", Err: ErrSyntax}
	if e.Error() != "a.cfg:3: bad; fix it" || !errors.Is(e, ErrSyntax) {
		t.Fatalf("Error() = %q", e.Error())
	}
	if e := (&Error{Msg: "built in code", Err: ErrInvalid}); e.Error() != "built in code" {
		t.Fatalf("Error() without position = %q", e.Error())
	}
}

// TestBindConflicts is the one bind-conflict rule, which the validator and
// the daemon's exposure planner share.
func TestBindConflicts(t *testing.T) {
	bind := func(s string, v4v6 bool) Bind {
		return Bind{Addr: netip.MustParseAddrPort(s), V4V6: v4v6}
	}
	in := func(ns string, b Bind) Bind { b.Namespace = ns; return b }
	v6only := func(s string) Bind { return Bind{Addr: netip.MustParseAddrPort(s), V6Only: true} }
	tests := []struct {
		name string
		used Bind
		b    Bind
		want bool
	}{
		{"same address", bind("127.0.0.1:80", false), bind("127.0.0.1:80", false), true},
		{"other port", bind("127.0.0.1:80", false), bind("127.0.0.1:81", false), false},
		{"two IPv4 addresses", bind("127.0.0.1:80", false), bind("127.0.0.2:80", false), false},
		{"0.0.0.0 covers IPv4", bind("0.0.0.0:80", false), bind("127.0.0.1:80", false), true},
		{"IPv4 under 0.0.0.0", bind("127.0.0.1:80", false), bind("0.0.0.0:80", false), true},
		{"0.0.0.0 and :: (both families by default)", bind("0.0.0.0:80", false), bind("[::]:80", false), true},
		{"0.0.0.0 and :: v6only", bind("0.0.0.0:80", false), v6only("[::]:80"), false},
		{"0.0.0.0 and ::1", bind("0.0.0.0:80", false), bind("[::1]:80", false), false},
		{":: covers IPv6", bind("[::]:80", false), bind("[::1]:80", false), true},
		{":: and 127.0.0.1", bind("[::]:80", false), bind("127.0.0.1:80", false), true},
		{":: v6only and 127.0.0.1", v6only("[::]:80"), bind("127.0.0.1:80", false), false},
		{":: v6only covers IPv6", v6only("[::]:80"), bind("[::1]:80", false), true},
		{":: v4v6 and 0.0.0.0", bind("[::]:80", true), bind("0.0.0.0:80", false), true},
		{":: v4v6 and 127.0.0.1", bind("127.0.0.1:80", false), bind("[::]:80", true), true},
		{":: v4v6 and ::1", bind("[::1]:80", false), bind("[::]:80", true), true},
		{":: v4v6 and ::", bind("[::]:80", true), bind("[::]:80", false), true},
		{"::1 v4v6 is IPv6 only", bind("[::1]:80", true), bind("127.0.0.1:80", false), false},
		{"other namespace", in("n1", bind("0.0.0.0:80", false)), in("n2", bind("0.0.0.0:80", false)), false},
		{"namespace and default", in("n1", bind("0.0.0.0:80", false)), bind("127.0.0.1:80", false), false},
		{"same namespace", in("n1", bind("0.0.0.0:80", false)), in("n1", bind("10.0.0.1:80", false)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.used.Conflicts(tt.b); got != tt.want {
				t.Errorf("Conflicts = %v, want %v", got, tt.want)
			}
			if got := tt.b.Conflicts(tt.used); got != tt.want {
				t.Errorf("Conflicts is not symmetric: %v", got)
			}
			var s BindSet
			f := &Frontend{Name: "f"}
			s.Add(tt.used, f)
			u, by, ok := s.Conflict(tt.b)
			if ok != tt.want || ok && (by != f || u != tt.used) {
				t.Errorf("BindSet.Conflict = %v, %v, %v", u, by, ok)
			}
		})
	}
	// What the rule lets through, a whole config takes.
	c := validConfig()
	c.Frontends[0].Binds = []Bind{in("n1", bind("0.0.0.0:80", false)), in("n1", v6only("[::]:80")),
		bind("0.0.0.0:80", false), in("n2", bind("[::]:80", true))}
	if err := c.Validate(); err != nil {
		t.Errorf("binds that do not overlap: %v", err)
	}
}
