package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// env is a registry plus an engine with namespaces made for one test.
type env struct {
	t   *testing.T
	reg *netns.Registry
	e   *Engine
	log *testlog.Buffer
}

func newEnv(t *testing.T, names ...string) *env {
	t.Helper()
	testns.RequireRoot(t)
	lb := &testlog.Buffer{}
	if testing.Verbose() {
		lb.Echo = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg, err := netns.NewRegistry("", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.SetNames(names); err != nil {
		t.Fatal(err)
	}
	e := New(reg, log)
	before := runtime.NumGoroutine()
	fdsBefore := openFDs()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.Shutdown(ctx)
		reg.Close()
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before+2 {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		for openFDs() > fdsBefore+2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if links := openFDLinks(); len(links) > fdsBefore+2 {
			t.Errorf("fd leak: %d open before, %d after (pipes not counted): %v", fdsBefore, len(links), links)
		}
	})
	return &env{t: t, reg: reg, e: e, log: lb}
}

// openFDs counts this process's open file descriptors, but pipes: the
// runtime keeps spliced pipe pairs in a pool that is freed by the garbage
// collector, not by us.
func openFDs() int { return len(openFDLinks()) }

// openFDLinks lists this process's open file descriptors but pipes, as
// "fd->target". A descriptor closed between the listing and its readlink
// (the collector freeing pipes while we count) was not open: it is left out.
func openFDLinks() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var links []string
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || strings.HasPrefix(l, "pipe:") {
			continue
		}
		links = append(links, e.Name()+"->"+l)
	}
	return links
}

func (v *env) handle(name string) *netns.Handle {
	v.t.Helper()
	h, err := v.reg.Get(name)
	if err != nil {
		v.t.Fatal(err)
	}
	return h
}

// serve runs a server in namespace ns at addr that first writes tag+"\n" and
// then echoes. It stops with the test.
func (v *env) serve(ns, addr, tag string) {
	v.t.Helper()
	v.serveFunc(ns, addr, func(c net.Conn) {
		io.WriteString(c, tag+"\n")
		io.Copy(c, c)
	})
}

// dial connects from inside ns ("" = default) and returns the conn.
func (v *env) dial(ns, addr string) (*net.TCPConn, error) {
	h := v.reg.Default()
	if ns != "" {
		var err error
		if h, err = netns.OpenPath(filepath.Join(netns.DefaultDir, ns), ns); err != nil {
			return nil, err
		}
		defer h.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return h.Dial(ctx, netip.MustParseAddrPort(addr), netns.DialOptions{})
}

// ask connects, reads the server's tag line, checks an echo and closes.
func (v *env) ask(ns, addr string) (string, error) {
	c, err := v.dial(ns, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	tag, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	io.WriteString(c, "ping\n")
	echo, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if echo != "ping\n" {
		return "", fmt.Errorf("echo %q, want ping", echo)
	}
	return strings.TrimSpace(tag), nil
}

// eventually retries f until it returns nil or 5s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testwait.For(t, 5*time.Second, what, f)
}

func expectTag(v *env, ns, addr, want string) {
	v.t.Helper()
	eventually(v.t, "ask "+addr+" in "+ns, func() error {
		got, err := v.ask(ns, addr)
		if err != nil {
			return err
		}
		if got != want {
			return &mismatch{got, want}
		}
		return nil
	})
}

type mismatch struct{ got, want string }

func (m *mismatch) Error() string { return "served by " + m.got + ", want " + m.want }

// waitLog waits until the log contains s (connection lines are written
// when the connection ends, a moment after the client closed).
func (v *env) waitLog(s string) {
	v.t.Helper()
	eventually(v.t, "log line", func() error {
		if strings.Contains(v.log.String(), s) {
			return nil
		}
		return &mismatch{"log without " + s, s}
	})
}

func spec1(bind BindSpec, be BackendSpec) Spec {
	be.Name = "b"
	return Spec{Frontends: []FrontendSpec{{Name: "f", Binds: []BindSpec{bind}, Backend: "b"}},
		Backends: []BackendSpec{be}}
}

func srv(name, addr, ns string) ServerSpec {
	ap := netip.MustParseAddrPort(addr)
	return ServerSpec{Name: name, Addr: ap.Addr(), Port: ap.Port(), Namespace: ns, Weight: 1,
		Inter: 100 * time.Millisecond, Rise: 1, Fall: 1}
}

// TestListenerInAServerInB: a listener inside A, servers with the same IP
// inside B and C: the server line's namespace decides who answers.
func TestListenerInAServerInB(t *testing.T) {
	a, b, c := testns.New(t, "A"), testns.New(t, "B"), testns.New(t, "C")
	v := newEnv(t, a, b, c)
	for _, ns := range []string{b, c} {
		testns.Addr(t, ns, "10.77.0.1/32")
		v.serve(ns, "10.77.0.1:8080", ns)
	}
	err := v.e.Apply(spec1(BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9000"), Namespace: a},
		BackendSpec{Servers: []ServerSpec{srv("s1", "10.77.0.1:8080", c)}}))
	if err != nil {
		t.Fatal(err)
	}
	expectTag(v, a, "127.0.0.1:9000", c)
	if _, err := v.ask("", "127.0.0.1:9000"); err == nil {
		t.Fatal("listener in A is reachable from the default namespace")
	}
	// Point the server at B: the same listener now reaches B.
	v.e.Apply(spec1(BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:9000"), Namespace: a},
		BackendSpec{Servers: []ServerSpec{srv("s1", "10.77.0.1:8080", b)}}))
	expectTag(v, a, "127.0.0.1:9000", b)
	v.waitLog("client_netns=" + a + " client_netns_source=listener server_netns=" + b)
}

func TestRoundRobinAndBackup(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7001", "one")
	v.serve(b, "127.0.0.1:7002", "two")
	v.serve(b, "127.0.0.1:7003", "spare")
	s3 := srv("s3", "127.0.0.1:7003", b)
	s3.Backup = true
	v.e.Apply(spec1(BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, BackendSpec{}))
	// A fixed port in the default namespace for the client side.
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s1", "127.0.0.1:7001", b), srv("s2", "127.0.0.1:7002", b), s3}}))
	addr := bind.Addr.String()
	seen := map[string]int{}
	eventually(t, "listener up", func() error { _, err := v.ask("", addr); return err })
	for i := 0; i < 6; i++ {
		tag, err := v.ask("", addr)
		if err != nil {
			t.Fatal(err)
		}
		seen[tag]++
	}
	if seen["one"] != 3 || seen["two"] != 3 {
		t.Fatalf("round robin spread %v, want 3/3 and no backup", seen)
	}
	// Disable both: the backup takes over.
	d1, d2 := srv("s1", "127.0.0.1:7001", b), srv("s2", "127.0.0.1:7002", b)
	d1.Disabled, d2.Disabled = true, true
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{d1, d2, s3}}))
	expectTag(v, "", addr, "spare")
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestBalanceAlgorithms(t *testing.T) {
	mk := func(alg string, weights ...int) *backend {
		b := &backend{name: "b"}
		bs := BackendSpec{Name: "b", Balance: alg}
		for i, w := range weights {
			s := srv(string(rune('a'+i)), "127.0.0.1:1", "")
			s.Weight = w
			bs.Servers = append(bs.Servers, s)
		}
		b.update(bs)
		return b
	}
	ok := func(string) bool { return true }
	client := netip.MustParseAddr("192.0.2.7")

	b := mk(RoundRobin, 3, 1)
	count := map[string]int{}
	for i := 0; i < 8; i++ {
		count[b.pick(client, nil, ok).spec.Name]++
	}
	if count["a"] != 6 || count["b"] != 2 {
		t.Errorf("weighted round robin 3:1 gave %v", count)
	}

	b = mk(First, 1, 1)
	for i := 0; i < 3; i++ {
		if n := b.pick(client, nil, ok).spec.Name; n != "a" {
			t.Errorf("first picked %s", n)
		}
	}

	b = mk(LeastConn, 1, 1)
	b.servers[0].active.Store(5)
	if n := b.pick(client, nil, ok).spec.Name; n != "b" {
		t.Errorf("leastconn picked %s with a busier", n)
	}

	b = mk(Source, 1, 1, 1)
	first := b.pick(client, nil, ok)
	for i := 0; i < 5; i++ {
		if b.pick(client, nil, ok) != first {
			t.Error("source balance is not sticky")
		}
	}
	spread := map[string]int{}
	for i := 0; i < 300; i++ {
		c := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if i >= 256 {
			c = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		}
		spread[b.pick(c, nil, ok).spec.Name]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if spread[n] < 50 {
			t.Errorf("source hashing spreads badly over 300 clients: %v", spread)
		}
	}

	b = mk(LeastConn, 1, 1, 1)
	ties := map[string]int{}
	for i := 0; i < 9; i++ {
		ties[b.pick(client, nil, ok).spec.Name]++
	}
	if ties["a"] != 3 || ties["b"] != 3 || ties["c"] != 3 {
		t.Errorf("leastconn ties must rotate: %v", ties)
	}

	b = mk(RoundRobin, 1, 1, 1)
	b.servers[1].spec.Backup, b.servers[2].spec.Backup = true, true
	b.servers[0].up.Store(false)
	for i := 0; i < 4; i++ {
		if n := b.pick(client, nil, ok).spec.Name; n != "b" {
			t.Errorf("with the active server down, the first backup must take everything, got %s", n)
		}
	}

	b = mk(RoundRobin, 1, 0)
	for i := 0; i < 3; i++ {
		if n := b.pick(client, nil, ok).spec.Name; n != "a" {
			t.Errorf("weight 0 server got traffic")
		}
	}
	b = mk(RoundRobin, 1)
	b.servers[0].up.Store(false)
	if b.pick(client, nil, ok) != nil {
		t.Error("down server picked")
	}
	// Editing the weight of a down checked server keeps it down (its
	// checker raises it again); removing its check raises it (nothing
	// else would).
	edited := b.spec.Load()
	bs2 := *edited
	bs2.Servers = append([]ServerSpec(nil), edited.Servers...)
	bs2.Servers[0].Check = true
	b.update(bs2)
	b.servers[0].up.Store(false)
	bs2.Servers = append([]ServerSpec(nil), bs2.Servers...)
	bs2.Servers[0].Weight = 5
	b.update(bs2)
	if b.servers[0].up.Load() || b.servers[0].spec.Weight != 5 {
		t.Error("a down checked server came back up when its weight changed")
	}
	bs2.Servers = append([]ServerSpec(nil), bs2.Servers...)
	bs2.Servers[0].Check = false
	if _, _, raised := b.update(bs2); !b.servers[0].up.Load() || len(raised) != 1 {
		t.Errorf("a down server stayed down when its check was removed (raised: %d)", len(raised))
	}
	b = mk(RoundRobin, 1)
	b.servers[0].spec.Namespace = "gone"
	if b.pick(client, nil, func(n string) bool { return n != "gone" }) != nil {
		t.Error("server in a missing namespace picked")
	}
}

func TestHealthCheckInServerNamespace(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	s := srv("s1", "127.0.0.1:7101", b)
	s.Check = true
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	// Something listens on 127.0.0.1:7101 in the default namespace: a check
	// run in the wrong namespace would pass.
	decoy, err := net.Listen("tcp", "127.0.0.1:7101")
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	v.e.Apply(spec1(bind, BackendSpec{CheckTimeout: 200 * time.Millisecond, Servers: []ServerSpec{s}}))
	waitUp := func(want bool) {
		eventually(t, "server health", func() error {
			for _, st := range v.e.Servers() {
				if st.Up == want {
					return nil
				}
			}
			return &mismatch{"other state", "up=" + map[bool]string{true: "true", false: "false"}[want]}
		})
	}
	waitUp(false)
	v.serve(b, "127.0.0.1:7101", "alive")
	waitUp(true)
	expectTag(v, "", bind.Addr.String(), "alive")
	v.waitLog("server down")
	v.waitLog("server up")
}
