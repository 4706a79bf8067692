package sidecar

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

func intp(n int) *int { return &n }

// everyField: API objects that set every field the HAProxy-style syntax
// can say for them.
var (
	everyBackend = api.Backend{Name: "be", Balance: "leastconn", ConnectTimeout: "5s", ServerTimeout: "90s",
		ServerFinTimeout: "1500ms", CheckTimeout: "2m", SourceAddr: "0.0.0.0", UseSrc: "clientip",
		Servers: []api.Server{
			{Name: "fixed", Addr: "10.0.0.1:8080", Namespace: "n1", Check: true, Inter: "10s", Rise: 4, Fall: 5,
				Weight: intp(0), Backup: true, Disabled: true, SendProxy: 2},
			{Name: "any", Addr: "*", Namespace: "*", SendProxy: 1},
			{Name: "offset", Addr: "*:+1000"},
			{Name: "minus", Addr: "[fd00::1]:-10", Weight: intp(256)},
			{Name: "v6noport", Addr: "[fd00::2]"},
			{Name: "unspec", Addr: "0.0.0.0:81"},
		}}
	everyFrontend = api.Frontend{Name: "fe", Backend: "be", MaxConn: 77, ClientTimeout: "30s", ClientFinTimeout: "1m",
		ProxyHeaderTimeout: "3s", TrustedProxies: []string{"10.0.0.0/8", "192.168.1.7", "fd00::/64"}, LenientNetnsTLV: true,
		Binds: []api.Bind{
			{Addr: "127.0.0.1:24500", Namespace: "n1", AcceptProxy: true},
			{Addr: "[::]:24501", V4V6: true},
			{Addr: "[::1]:24502", V6Only: true},
			{Addr: ":24503"},
		}}
)

func TestConverterEveryField(t *testing.T) {
	m, err := merge(&config.Config{}, State{Backends: []api.Backend{everyBackend}, Frontends: []api.Frontend{everyFrontend}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, f := m.Backends[0], m.Frontends[0]
	wantB := config.Backend{Name: "be", Balance: config.BalanceLeastConn, ConnectTimeout: 5 * time.Second,
		ServerTimeout: 90 * time.Second, ServerFinTimeout: 1500 * time.Millisecond, CheckTimeout: 2 * time.Minute,
		Source: netip.IPv4Unspecified(), UseSrcClientIP: true}
	if got := plainBackend(b); !reflect.DeepEqual(got, wantB) {
		t.Errorf("backend\n%+v, want\n%+v", got, wantB)
	}
	if b.Pos.String() != "api backend be" || sourceOf(b.Pos) != api.SourceAPI {
		t.Errorf("backend position %q", b.Pos)
	}
	def := config.BuiltinDefaults().Server
	srv := func(name string, mod func(s *config.Server)) config.Server {
		s := def
		s.Name = name
		mod(&s)
		return s
	}
	wantS := []config.Server{
		srv("fixed", func(s *config.Server) {
			s.Addr, s.Port, s.Namespace, s.Check, s.Inter, s.Rise, s.Fall = netip.MustParseAddr("10.0.0.1"), 8080, "n1", true, 10*time.Second, 4, 5
			s.Weight, s.Backup, s.Disabled, s.SendProxy = 0, true, true, 2
		}),
		srv("any", func(s *config.Server) { s.PortMode, s.ClientNamespace, s.SendProxy = config.PortFromClient, true, 1 }),
		srv("offset", func(s *config.Server) { s.PortMode, s.PortOffset = config.PortOffset, 1000 }),
		srv("minus", func(s *config.Server) {
			s.Addr, s.PortMode, s.PortOffset, s.Weight = netip.MustParseAddr("fd00::1"), config.PortOffset, -10, 256
		}),
		srv("v6noport", func(s *config.Server) { s.Addr, s.PortMode = netip.MustParseAddr("fd00::2"), config.PortFromClient }),
		srv("unspec", func(s *config.Server) { s.Addr, s.Port = netip.IPv4Unspecified(), 81 }),
	}
	if len(b.Servers) != len(wantS) {
		t.Fatalf("%d servers", len(b.Servers))
	}
	for i, s := range b.Servers {
		got := *s
		if want := "api backend be field servers[" + string(rune('0'+i)) + "]"; got.Pos.String() != want {
			t.Errorf("server %d position %q, want %q", i, got.Pos, want)
		}
		got.Pos = config.Pos{}
		if got != wantS[i] {
			t.Errorf("server %d\n%+v, want\n%+v", i, got, wantS[i])
		}
	}
	wantF := config.Frontend{Name: "fe", DefaultBackend: "be", MaxConn: 77, ClientTimeout: 30 * time.Second,
		ClientFinTimeout: time.Minute, ProxyHeaderTimeout: 3 * time.Second, LenientNetnsTLV: true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/64")},
		Binds: []config.Bind{
			{Addr: netip.MustParseAddrPort("127.0.0.1:24500"), Namespace: "n1", AcceptProxy: true},
			{Addr: netip.MustParseAddrPort("[::]:24501"), V4V6: true},
			{Addr: netip.MustParseAddrPort("[::1]:24502"), V6Only: true},
			{Addr: netip.MustParseAddrPort("0.0.0.0:24503")},
		}}
	if got := plainFrontend(f); !reflect.DeepEqual(got, wantF) {
		t.Errorf("frontend\n%+v, want\n%+v", got, wantF)
	}
	if f.Binds[1].Pos.String() != "api frontend fe field binds[1]" {
		t.Errorf("bind position %q", f.Binds[1].Pos)
	}
}

// plainFrontend / plainBackend: the values of a model object, without
// where it was written (which differs between syntaxes by design).
func plainFrontend(f *config.Frontend) config.Frontend {
	out := *f
	out.Pos, out.Listen = config.Pos{}, false
	out.Binds = nil
	for _, b := range f.Binds {
		b.Pos = config.Pos{}
		out.Binds = append(out.Binds, b)
	}
	return out
}

func plainBackend(b *config.Backend) config.Backend {
	out := *b
	out.Pos, out.Listen, out.Servers, out.DefaultServer = config.Pos{}, false, nil, config.Server{}
	return out
}

func plainServers(b *config.Backend) []config.Server {
	var out []config.Server
	for _, s := range b.Servers {
		c := *s
		c.Pos = config.Pos{}
		out = append(out, c)
	}
	return out
}

// TestConverterErrors: every bad value is refused with the object, the
// JSON path of the field and what to write, through the config parser's
// own value functions.
func TestConverterErrors(t *testing.T) {
	fe := func(mod func(f *api.Frontend)) State {
		f := api.Frontend{Name: "web", Backend: "b", Binds: []api.Bind{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}}}
		mod(&f)
		return State{Frontends: []api.Frontend{f}, Backends: []api.Backend{{Name: "b"}}}
	}
	be := func(mod func(b *api.Backend)) State {
		b := api.Backend{Name: "b", Servers: []api.Server{{Name: "s0", Addr: "10.0.0.1:80"}, {Name: "s1", Addr: "10.0.0.2:80"}}}
		mod(&b)
		return State{Backends: []api.Backend{b}}
	}
	sv := func(mod func(s *api.Server)) State {
		s := api.Server{Backend: "b", Name: "x", Addr: "10.0.0.1:80"}
		mod(&s)
		return State{Backends: []api.Backend{{Name: "b"}}, Servers: []api.Server{s}}
	}
	for _, tc := range []struct {
		name string
		st   State
		want string
		is   error
	}{
		{"frontend name", fe(func(f *api.Frontend) { f.Name = "a b" }), `api frontend a b field name: invalid frontend name "a b"; names are made of`, config.ErrInvalid},
		{"no binds", fe(func(f *api.Frontend) { f.Binds = nil }), `api frontend web field binds: no bind; add one`, config.ErrIncomplete},
		{"bind addr", fe(func(f *api.Frontend) { f.Binds[1].Addr = "example.com:80" }), `api frontend web field binds[1].addr: invalid address "example.com:80"; use an IP literal`, config.ErrInvalid},
		{"bind no port", fe(func(f *api.Frontend) { f.Binds[1].Addr = "127.0.0.1" }), `api frontend web field binds[1].addr: address "127.0.0.1" has no port`, config.ErrInvalid},
		{"bind offset", fe(func(f *api.Frontend) { f.Binds[0].Addr = "127.0.0.1:+1" }), `api frontend web field binds[0].addr: address "127.0.0.1:+1": port offsets`, config.ErrInvalid},
		{"bind injection", fe(func(f *api.Frontend) { f.Binds[0].Addr = "127.0.0.1:80 accept-proxy" }), `api frontend web field binds[0].addr: address "127.0.0.1:80 accept-proxy": invalid port`, config.ErrInvalid},
		{"bind namespace star", fe(func(f *api.Frontend) { f.Binds[1].Namespace = "*" }), `api frontend web field binds[1].namespace: namespace * is only for servers`, config.ErrInvalid},
		{"bind namespace bad", fe(func(f *api.Frontend) { f.Binds[1].Namespace = "../x" }), `api frontend web field binds[1].namespace: invalid namespace name "../x"`, config.ErrInvalid},
		{"bind both families", fe(func(f *api.Frontend) { f.Binds[1].Addr, f.Binds[1].V4V6, f.Binds[1].V6Only = "[::]:1", true, true }), `api frontend web field binds[1]: v4v6 and v6only contradict`, config.ErrInvalid},
		{"bind v6only v4", fe(func(f *api.Frontend) { f.Binds[1].V6Only = true }), `api frontend web field binds[1]: v6only applies to IPv6 addresses`, config.ErrInvalid},
		{"bind v4v6 v4", fe(func(f *api.Frontend) { f.Binds[1].V4V6 = true }), `api frontend web field binds[1]: bind 127.0.0.1:2 in frontend "web": v4v6 applies to IPv6 addresses`, config.ErrInvalid},
		{"bind twice", fe(func(f *api.Frontend) { f.Binds[1].Addr = "127.0.0.1:1" }), `api frontend web field binds[1]: bind 127.0.0.1:1 in the default namespace of frontend "web" is already bound by frontend "web" at api frontend web field binds[0]`, config.ErrDuplicate},
		{"no backend", fe(func(f *api.Frontend) { f.Backend = "" }), `api frontend web field backend: required`, config.ErrIncomplete},
		{"bad backend name", fe(func(f *api.Frontend) { f.Backend = "a#b" }), `api frontend web field backend: invalid backend name "a#b"`, config.ErrInvalid},
		{"unknown backend", fe(func(f *api.Frontend) { f.Backend = "nope" }), `api frontend web field backend: frontend "web": backend "nope" is not defined`, config.ErrUnknownBackend},
		{"maxconn", fe(func(f *api.Frontend) { f.MaxConn = -1 }), `api frontend web field maxconn: -1 out of range; write 1 to 2147483647, or leave it out (0)`, config.ErrInvalid},
		{"client timeout", fe(func(f *api.Frontend) { f.ClientTimeout = "1m30s" }), `api frontend web field clientTimeout: invalid duration "1m30s"; write a whole number`, config.ErrInvalid},
		{"client fin timeout", fe(func(f *api.Frontend) { f.ClientFinTimeout = "0" }), `api frontend web field clientFinTimeout: duration "0" must be greater than 0`, config.ErrInvalid},
		{"proxy header timeout", fe(func(f *api.Frontend) { f.ProxyHeaderTimeout = "99999d" }), `api frontend web field proxyHeaderTimeout: duration "99999d" is too large`, config.ErrInvalid},
		{"trusted proxy", fe(func(f *api.Frontend) { f.TrustedProxies = []string{"10.0.0.0/8", "nowhere"} }), `api frontend web field trustedProxies[1]: invalid network "nowhere"`, config.ErrInvalid},
		{"backend name", be(func(b *api.Backend) { b.Name = "" }), `api backend  field name: invalid backend name ""`, config.ErrInvalid},
		{"balance", be(func(b *api.Backend) { b.Balance = "static-rr" }), `api backend b field balance: unsupported algorithm "static-rr"; supported: roundrobin`, config.ErrUnsupported},
		{"connect timeout", be(func(b *api.Backend) { b.ConnectTimeout = "5 s" }), `api backend b field connectTimeout: invalid duration "5 s"`, config.ErrInvalid},
		{"server timeout", be(func(b *api.Backend) { b.ServerTimeout = "-1" }), `api backend b field serverTimeout: invalid duration "-1"`, config.ErrInvalid},
		{"server fin timeout", be(func(b *api.Backend) { b.ServerFinTimeout = "1w" }), `api backend b field serverFinTimeout: invalid duration "1w"`, config.ErrInvalid},
		{"check timeout", be(func(b *api.Backend) { b.CheckTimeout = "x" }), `api backend b field checkTimeout: invalid duration "x"`, config.ErrInvalid},
		{"source addr", be(func(b *api.Backend) { b.SourceAddr = "gateway" }), `api backend b field sourceAddr: invalid address "gateway"; write an IP literal`, config.ErrInvalid},
		{"source port", be(func(b *api.Backend) { b.SourceAddr = "10.0.0.1:20" }), `api backend b field sourceAddr: address "10.0.0.1:20": source ports are not supported`, config.ErrUnsupported},
		{"usesrc", be(func(b *api.Backend) { b.UseSrc = "client" }), `api backend b field usesrc: unsupported usesrc "client"; only clientip`, config.ErrUnsupported},
		{"usesrc real source", be(func(b *api.Backend) { b.SourceAddr, b.UseSrc = "10.0.0.1", "clientip" }), `api backend b field sourceAddr: usesrc clientip needs source 0.0.0.0, not 10.0.0.1`, config.ErrUnsupported},
		{"server name", be(func(b *api.Backend) { b.Servers[1].Name = "s 1" }), `api backend b field servers[1].name: invalid server name "s 1"`, config.ErrInvalid},
		{"server other backend", be(func(b *api.Backend) { b.Servers[1].Backend = "c" }), `api backend b field servers[1].backend: names backend "c" inside backend "b"`, config.ErrInvalid},
		{"server addr", be(func(b *api.Backend) { b.Servers[1].Addr = "fd00::1" }), `api backend b field servers[1].addr: address "fd00::1": the last colon of an IPv6 address separates the port`, config.ErrInvalid},
		{"server port range", be(func(b *api.Backend) { b.Servers[1].Addr = "10.0.0.1:80-90" }), `api backend b field servers[1].addr: address "10.0.0.1:80-90": port ranges are not supported`, config.ErrUnsupported},
		{"server namespace", be(func(b *api.Backend) { b.Servers[1].Namespace = ".." }), `api backend b field servers[1].namespace: invalid namespace name ".."`, config.ErrInvalid},
		{"server inter", be(func(b *api.Backend) { b.Servers[1].Inter = "2 s" }), `api backend b field servers[1].inter: invalid duration "2 s"`, config.ErrInvalid},
		{"server rise", be(func(b *api.Backend) { b.Servers[1].Rise = -2 }), `api backend b field servers[1].rise: -2 out of range`, config.ErrInvalid},
		{"server fall", be(func(b *api.Backend) { b.Servers[1].Fall = -1 }), `api backend b field servers[1].fall: -1 out of range`, config.ErrInvalid},
		{"server weight", be(func(b *api.Backend) { b.Servers[1].Weight = intp(257) }), `api backend b field servers[1].weight: 257 out of range; write 0 to 256`, config.ErrInvalid},
		{"server send proxy", be(func(b *api.Backend) { b.Servers[1].SendProxy = 3 }), `api backend b field servers[1].sendProxy: 3: write 1 (PROXY v1), 2 (PROXY v2)`, config.ErrInvalid},
		{"server twice", be(func(b *api.Backend) { b.Servers[1].Name = "s0" }), `api backend b field servers[1]: duplicate server "s0" in backend "b", first defined at api backend b field servers[0]`, config.ErrDuplicate},
		{"added server addr", sv(func(s *api.Server) { s.Addr = "10.0.0.1:0" }), `api server b/x field addr: address "10.0.0.1:0": invalid port "0"`, config.ErrInvalid},
		{"added server no backend", sv(func(s *api.Server) { s.Backend = "nope" }), `api server nope/x field backend: backend "nope" does not exist`, config.ErrUnknownBackend},
		{"added server weight", sv(func(s *api.Server) { s.Weight = intp(-1) }), `api server b/x field weight: -1 out of range`, config.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := merge(&config.Config{}, tc.st, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n%v\nlacks\n%s", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Pos.Origin != config.OriginAPI {
				t.Fatalf("error %v carries no API position", err)
			}
		})
	}
}

// TestGetIsValidPostEveryField: what GET prints of an object, of any
// syntax, converts back to the same model: every field round-trips.
func TestGetIsValidPostEveryField(t *testing.T) {
	file, err := config.Load("config/testdata/full.cfg")
	if err != nil {
		t.Fatal(err)
	}
	st := State{Backends: []api.Backend{everyBackend}, Frontends: []api.Frontend{everyFrontend}}
	m, err := merge(file, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Frontends {
		checkFrontendRoundTrip(t, f, m)
	}
	for _, b := range m.Backends {
		checkBackendRoundTrip(t, b)
	}
}

// checkFrontendRoundTrip: f printed as the API prints it, sent back as
// JSON and converted, is f again. m provides the backend it names.
func checkFrontendRoundTrip(t *testing.T, f *config.Frontend, m *config.Config) {
	t.Helper()
	af := apiFrontend(f)
	body, err := json.Marshal(af)
	if err != nil {
		t.Fatal(err)
	}
	var in api.Frontend
	if err := decodeBody(body, &in); err != nil {
		t.Fatalf("GET of frontend %s is not valid POST JSON: %v", f.Name, err)
	}
	back, err := frontendModel(in, apiOrigin(frontendKey(in.Name)), config.Defaults{})
	if err != nil {
		t.Fatalf("GET of frontend %s (%s) is refused: %v", f.Name, body, err)
	}
	want := plainFrontend(f)
	want.Tenant = "" // read-only: comes from the manifest, not the object
	if got := plainFrontend(back); !reflect.DeepEqual(got, want) {
		t.Errorf("frontend %s round trip via %s\n%+v, want\n%+v", f.Name, body, got, want)
	}
}

func checkBackendRoundTrip(t *testing.T, b *config.Backend) {
	t.Helper()
	ab := apiBackend(b)
	body, err := json.Marshal(ab)
	if err != nil {
		t.Fatal(err)
	}
	var in api.Backend
	if err := decodeBody(body, &in); err != nil {
		t.Fatalf("GET of backend %s is not valid POST JSON: %v", b.Name, err)
	}
	// Zero defaults: the round trip must not depend on inheriting.
	back, err := backendModel(in, apiOrigin(backendKey(in.Name)), config.Defaults{Backend: config.Backend{Balance: config.BalanceRoundRobin}})
	if err != nil {
		t.Fatalf("GET of backend %s (%s) is refused: %v", b.Name, body, err)
	}
	want := plainBackend(b)
	want.Tenant = ""
	if got := plainBackend(back); !reflect.DeepEqual(got, want) {
		t.Errorf("backend %s round trip via %s\n%+v, want\n%+v", b.Name, body, got, want)
	}
	if got, want := plainServers(back), plainServers(b); !reflect.DeepEqual(got, want) {
		t.Errorf("servers of %s round trip via %s\n%+v, want\n%+v", b.Name, body, got, want)
	}
}

// TestRuntimeObjectsInheritDefaults: API objects inherit the files' last
// defaults section, as if written after the files; a server added to a
// backend of the files starts from that backend's default-server.
func TestRuntimeObjectsInheritDefaults(t *testing.T) {
	src := "defaults\n\tmaxconn 10\n\ttimeout client 7s\n\ttimeout connect 2s\n\tbalance leastconn\n\toption lenient-netns-tlv\n" +
		"\tsource 0.0.0.0 usesrc clientip\n\tdefault-server check inter 9s weight 5\n" +
		"backend fb\n\tdefault-server weight 7 send-proxy\n\tserver s0 10.0.0.1:80\n" +
		"defaults last\n\ttimeout client 8s\n\tdefault-server rise 6\n"
	file, err := config.Parse("d.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	st := State{
		Backends: []api.Backend{
			{Name: "inherit", Servers: []api.Server{{Name: "s", Addr: "10.0.0.2:80"}}},
			{Name: "own", Balance: "first", ConnectTimeout: "3s", Servers: []api.Server{{Name: "s", Addr: "10.0.0.2:80", Rise: 2, Weight: intp(0), Check: true}}},
		},
		Servers:   []api.Server{{Backend: "fb", Name: "added", Addr: "10.0.0.3:80"}},
		Frontends: []api.Frontend{{Name: "f", Backend: "inherit", Binds: []api.Bind{{Addr: "127.0.0.1:24510"}}}},
	}
	m, err := merge(file, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]*config.Backend{}
	for _, b := range m.Backends {
		by[b.Name] = b
	}
	// The last defaults section ("last") applies, not the first.
	f := m.Frontends[0]
	if f.ClientTimeout != 8*time.Second || f.MaxConn != 0 || f.LenientNetnsTLV {
		t.Errorf("frontend did not inherit the last defaults: %+v", plainFrontend(f))
	}
	in := by["inherit"]
	if in.Balance != config.BalanceRoundRobin || in.ConnectTimeout != 0 || in.UseSrcClientIP {
		t.Errorf("backend inherit: %+v", plainBackend(in))
	}
	if s := in.Servers[0]; s.Rise != 6 || s.Check || s.Weight != 1 {
		t.Errorf("server of backend inherit: %+v", *s)
	}
	own := by["own"]
	if own.Balance != config.BalanceFirst || own.ConnectTimeout != 3*time.Second {
		t.Errorf("backend own: %+v", plainBackend(own))
	}
	if s := own.Servers[0]; s.Rise != 2 || !s.Check || s.Weight != 0 {
		t.Errorf("server of backend own: %+v", *s)
	}
	// fb was written under the first defaults and its own default-server.
	fb := by["fb"]
	if len(fb.Servers) != 2 {
		t.Fatalf("backend fb: %d servers", len(fb.Servers))
	}
	if s := fb.Servers[1]; s.Name != "added" || !s.Check || s.Inter != 9*time.Second || s.Weight != 7 || s.SendProxy != 1 || s.Rise != 2 {
		t.Errorf("server added to fb did not inherit fb's default-server: %+v", *s)
	}
	if *fb.Servers[0] == *fb.Servers[1] {
		t.Error("sanity: the two servers are the same")
	}
}

// TestManifestObjects: a tenant's frontends and backends join the model
// through the same converter, owned by the tenant, and their problems are
// placed at FILE:LINE:COLUMN through Set.Where (or named by path when the
// positions are unknown, as after a restart).
func TestManifestObjects(t *testing.T) {
	acme := manifest.Tenant{Meta: manifest.Meta{Name: "acme"}, Spec: manifest.TenantSpec{
		Backends:  []api.Backend{{Name: "acme-be", Servers: []api.Server{{Name: "s", Addr: "10.0.0.1:80"}}}},
		Frontends: []api.Frontend{{Name: "acme-fe", Backend: "acme-be", Binds: []api.Bind{{Addr: "127.0.0.1:24520"}}}},
	}}
	st := State{Manifests: manifest.Set{Tenants: []manifest.Tenant{acme}}}
	m, err := merge(&config.Config{}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, b := m.Frontends[0], m.Backends[0]
	if f.Tenant != "acme" || b.Tenant != "acme" || sourceOf(f.Pos) != api.SourceManifest {
		t.Fatalf("tenant or origin lost: %+v %+v", f, b)
	}
	if got := apiFrontend(f); got.Tenant != "acme" || got.Source != api.SourceManifest {
		t.Errorf("GET: %+v", got)
	}
	if f.Pos.String() != "manifest Tenant/acme.spec.frontends[0]" {
		t.Errorf("position %q", f.Pos)
	}

	bad := acme
	bad.Spec.Frontends = []api.Frontend{{Name: "acme-fe", Backend: "acme-be", Binds: []api.Bind{{Addr: "127.0.0.1:24520"}, {Addr: "127.0.0.1:99999"}}}}
	set := manifest.Set{Tenants: []manifest.Tenant{bad}, Positions: map[string]manifest.Pos{
		"Tenant/acme":                                 {File: "t.yaml", Line: 1, Col: 1},
		"Tenant/acme.spec.frontends[0]":               {File: "t.yaml", Line: 9, Col: 5},
		"Tenant/acme.spec.frontends[0].binds[1]":      {File: "t.yaml", Line: 12, Col: 9},
		"Tenant/acme.spec.frontends[0].binds[1].addr": {File: "t.yaml", Line: 12, Col: 15},
	}}
	_, err = merge(&config.Config{}, State{Manifests: set}, nil)
	if err == nil || !strings.Contains(err.Error(), `t.yaml:12:15: address "127.0.0.1:99999": invalid port`) {
		t.Fatalf("error %v, want one at t.yaml:12:15", err)
	}
	blamed := map[string][]string{}
	blame(err, blamed)
	if len(blamed["Tenant/acme"]) != 1 {
		t.Errorf("blamed %v, want the tenant", blamed)
	}
	// Without positions: the path says where.
	set.Positions = nil
	_, err = merge(&config.Config{}, State{Manifests: set}, nil)
	if err == nil || !strings.Contains(err.Error(), `manifest Tenant/acme.spec.frontends[0].binds[1].addr: address`) {
		t.Fatalf("error %v, want the field path", err)
	}
	// A validator problem (a name two tenants use) is placed too.
	other := manifest.Tenant{Meta: manifest.Meta{Name: "other"}, Spec: manifest.TenantSpec{
		Backends: []api.Backend{{Name: "acme-be"}}}}
	set = manifest.Set{Tenants: []manifest.Tenant{acme, other}, Positions: map[string]manifest.Pos{
		"Tenant/other.spec.backends[0]": {File: "o.yaml", Line: 4, Col: 3}}}
	_, err = merge(&config.Config{}, State{Manifests: set}, nil)
	if err == nil || !strings.Contains(err.Error(), `o.yaml:4:3: duplicate backend "acme-be", first defined at manifest Tenant/acme.spec.backends[0]`) {
		t.Fatalf("error %v, want the duplicate at o.yaml:4:3", err)
	}
}

// FuzzAPIObject: any JSON body the control API accepts for a frontend or
// a backend converts without a panic; an accepted object, printed as GET
// prints it, is accepted again as the same model.
func FuzzAPIObject(f *testing.F) {
	for _, s := range []string{
		`{"name":"b","servers":[{"name":"s","addr":"127.0.0.1:80","namespace":"n1","check":true,"inter":"2s","weight":3}]}`,
		`{"name":"b","servers":[{"name":"s","addr":"10.0.0.1:80 namespace evil"}]}`,
		`{"name":"b","balance":"leastconn","connectTimeout":"5s","sourceAddr":"0.0.0.0","usesrc":"clientip","servers":[{"name":"s","addr":"*:-5","namespace":"*","sendProxy":2}]}`,
		`{"name":"f","backend":"b","binds":[{"addr":"[::]:80","v4v6":true},{"addr":"127.0.0.1:81","namespace":"n","acceptProxy":true}],"trustedProxies":["10.0.0.0/8"],"lenientNetnsTLV":true,"clientFinTimeout":"1m","proxyHeaderTimeout":"100ms","maxconn":5}`,
		`{"name":"b #","servers":[]}`, `{"name":"f","backend":"b","binds":[{"addr":":0"}]}`,
		`{"name":"b","servers":[{"name":"s\ncheck","addr":"1.2.3.4:5"}]}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	empty := &config.Config{}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b api.Backend
		if decodeBody(body, &b) == nil {
			if m, err := merge(empty, State{Backends: []api.Backend{b}}, nil); err == nil {
				checkBackendRoundTrip(t, m.Backends[0])
			}
		}
		var fe api.Frontend
		if decodeBody(body, &fe) == nil {
			st := State{Frontends: []api.Frontend{fe}, Backends: []api.Backend{{Name: fe.Backend}}}
			if m, err := merge(empty, st, nil); err == nil {
				checkFrontendRoundTrip(t, m.Frontends[0], m)
			}
		}
	})
}

// TestManifestsPersistAndRestore: applied manifests are saved in the state
// file and come back at start; a tenant whose objects no longer fit the
// files is dropped whole (with a log line naming it), the others stay.
func TestManifestsPersistAndRestore(t *testing.T) {
	tenant := func(name, bind string) manifest.Tenant {
		return manifest.Tenant{Meta: manifest.Meta{Name: name}, Spec: manifest.TenantSpec{
			Backends:  []api.Backend{{Name: name + "-be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:24551"}}}},
			Frontends: []api.Frontend{{Name: name + "-fe", Backend: name + "-be", Binds: []api.Bind{{Addr: bind}}}},
		}}
	}
	// "clash" binds the files' own address: it no longer fits.
	st := State{Manifests: manifest.Set{Tenants: []manifest.Tenant{tenant("acme", "127.0.0.1:24552"), tenant("clash", "127.0.0.1:24550")}}}
	var log testlog.Buffer
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:24550", "127.0.0.1:24551"), st, &log)
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if got := d.state.Manifests.Tenants; len(got) != 1 || got[0].Meta.Name != "acme" {
		t.Fatalf("restored tenants %+v, want acme only", got)
	}
	if !strings.Contains(log.String(), "object=Tenant/clash") {
		t.Errorf("no log line for the dropped tenant:\n%s", log.String())
	}
	var fe *config.Frontend
	for _, f := range d.merged.Frontends {
		if f.Name == "acme-fe" {
			fe = f
		}
	}
	if fe == nil || fe.Tenant != "acme" || fe.Pos.Origin != config.OriginManifest {
		t.Fatalf("acme's frontend after restore: %+v", fe)
	}
	if err := d.DeleteFrontend("acme-fe"); err == nil || !strings.Contains(err.Error(), "belongs to Tenant/acme") {
		t.Errorf("deleting a manifest's frontend through the API: %v", err)
	}
	if err := d.AddServer(api.Server{Backend: "acme-be", Name: "x", Addr: "127.0.0.1:24553"}); !errors.Is(err, errConflict) || !strings.Contains(err.Error(), "add the server to the manifest") {
		t.Errorf("adding a server to a manifest's backend through the API: %v", err)
	}
}

// TestManifestYAMLIsTheSameModel: a tenant whose objects set every field,
// written as manifest YAML (manifest.Encode) and read back
// (manifest.Decode), converts to the same model as the API's JSON of the
// same objects: one schema, one converter, one meaning.
func TestManifestYAMLIsTheSameModel(t *testing.T) {
	set := manifest.Set{Tenants: []manifest.Tenant{{Meta: manifest.Meta{Name: "acme"}, Spec: manifest.TenantSpec{
		Frontends: []api.Frontend{everyFrontend}, Backends: []api.Backend{everyBackend}}}}}
	yml, err := manifest.Encode(set)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := manifest.Decode("acme.yaml", yml)
	if err != nil {
		t.Fatalf("%v\n%s", err, yml)
	}
	fromYAML, err := merge(&config.Config{}, State{Manifests: decoded}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := merge(&config.Config{}, State{Backends: []api.Backend{everyBackend}, Frontends: []api.Frontend{everyFrontend}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := plainFrontend(fromYAML.Frontends[0])
	if f.Tenant != "acme" {
		t.Errorf("tenant %q", f.Tenant)
	}
	f.Tenant = ""
	if want := plainFrontend(fromJSON.Frontends[0]); !reflect.DeepEqual(f, want) {
		t.Errorf("frontend from YAML\n%+v, from JSON\n%+v", f, want)
	}
	b := plainBackend(fromYAML.Backends[0])
	b.Tenant = ""
	if want := plainBackend(fromJSON.Backends[0]); !reflect.DeepEqual(b, want) {
		t.Errorf("backend from YAML\n%+v, from JSON\n%+v", b, want)
	}
	if got, want := plainServers(fromYAML.Backends[0]), plainServers(fromJSON.Backends[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("servers from YAML\n%+v, from JSON\n%+v", got, want)
	}
	// The decoder's positions place the model's objects in the file.
	if p := fromYAML.Frontends[0].Binds[1].Pos; p.File != "acme.yaml" || p.Line == 0 || p.Col == 0 {
		t.Errorf("bind position %+v", p)
	}
}

// TestTrustedByBoth: a tenant frontend's acceptProxy peers are those both
// its own trustedProxies and the tenant's admit (empty: any).
func TestTrustedByBoth(t *testing.T) {
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct {
		name             string
		frontend, tenant []netip.Prefix
		want             []netip.Prefix
		ok               bool
	}{
		{"neither", nil, nil, nil, true},
		{"tenant only", nil, p("10.0.0.0/24"), p("10.0.0.0/24"), true},
		{"frontend only", p("10.0.0.5/32"), nil, p("10.0.0.5/32"), true},
		{"frontend narrower", p("10.0.0.5/32"), p("10.0.0.0/24"), p("10.0.0.5/32"), true},
		{"tenant narrower", p("10.0.0.0/8"), p("10.0.0.0/24", "192.0.2.0/24"), p("10.0.0.0/24"), true},
		{"several meet", p("10.0.0.0/8", "192.0.2.7/32"), p("10.1.0.0/16", "192.0.2.0/24"), p("10.1.0.0/16", "192.0.2.7/32"), true},
		{"disjoint", p("127.0.0.1/32"), p("10.0.0.0/24"), nil, false},
		{"other family", p("::1/128"), p("10.0.0.0/24"), nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := trustedByBoth(c.frontend, c.tenant)
			if ok != c.ok || !slices.Equal(got, c.want) {
				t.Errorf("trustedByBoth(%v, %v) = %v, %v; want %v, %v", c.frontend, c.tenant, got, ok, c.want, c.ok)
			}
		})
	}
}
