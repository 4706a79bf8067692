package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// openSession connects through the proxy and checks the first echo; the
// connection stays open for the caller.
func openSession(t *testing.T, v *env, ns, addr, want string) (func(string) error, func()) {
	t.Helper()
	var c interface {
		io.ReadWriteCloser
	}
	eventually(t, "connect "+addr, func() error {
		cc, err := v.dial(ns, addr)
		if err != nil {
			return err
		}
		c = cc
		return nil
	})
	r := bufio.NewReader(c)
	tag, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(tag) != want {
		t.Fatalf("tag %q, err %v; want %q", tag, err, want)
	}
	echo := func(msg string) error {
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			return err
		}
		got, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if got != msg+"\n" {
			return errors.New("echo mismatch: " + got)
		}
		return nil
	}
	return echo, func() { c.Close() }
}

// TestApplyKeepsEstablished: re-applying with the same bind but another
// backend keeps the established connection, and new connections follow the
// new backend.
func TestApplyKeepsEstablished(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7201", "old")
	v.serve(b, "127.0.0.1:7202", "new")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7201", b)}}))
	echo, closeC := openSession(t, v, "", bind.Addr.String(), "old")
	defer closeC()
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7202", b)}}))
	if err := echo("still-there"); err != nil {
		t.Fatalf("established connection broken by Apply: %v", err)
	}
	expectTag(v, "", bind.Addr.String(), "new")
	// Removing the frontend stops the listener but not the connection.
	v.e.Apply(Spec{})
	if err := echo("after-removal"); err != nil {
		t.Fatalf("established connection broken by frontend removal: %v", err)
	}
	if _, err := v.ask("", bind.Addr.String()); err == nil {
		t.Fatal("removed frontend still accepts")
	}
}

// TestNamespaceDeleteAndRecreate: deleting the listener's namespace closes
// its listener and connections; recreating it brings the listener back.
func TestNamespaceDeleteAndRecreate(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	v.serve(b, "127.0.0.1:7301", "srv")
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:7300"), Namespace: a}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7301", b)}}))
	echo, closeC := openSession(t, v, a, "127.0.0.1:7300", "srv")
	defer closeC()
	if err := echo("x"); err != nil {
		t.Fatal(err)
	}
	oldID := v.handle(a).Identity()

	testns.Run(t, "ip", "netns", "del", a)
	v.reg.Resync()
	eventually(t, "connection closed with its namespace", func() error {
		if err := echo("y"); err == nil {
			return errors.New("still open")
		}
		return nil
	})
	eventually(t, "listener down", func() error {
		for _, l := range v.e.Listeners() {
			if l.Listening {
				return errors.New("still listening")
			}
		}
		return nil
	})
	v.waitLog("termination=client_netns_gone")

	testns.Run(t, "ip", "netns", "add", a)
	testns.Run(t, "ip", "-n", a, "link", "set", "lo", "up")
	v.reg.Resync()
	expectTag(v, a, "127.0.0.1:7300", "srv")
	if v.handle(a).Identity() == oldID {
		t.Fatal("identity unchanged after recreate")
	}
}

// TestServerNamespaceGone: deleting the server's namespace closes the
// connections into it and takes the server out of rotation.
func TestServerNamespaceGone(t *testing.T) {
	b, c := testns.New(t, "B"), testns.New(t, "C")
	v := newEnv(t, b, c)
	v.serve(b, "127.0.0.1:7401", "in-b")
	v.serve(c, "127.0.0.1:7401", "in-c")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	sb, sc := srv("sb", "127.0.0.1:7401", b), srv("sc", "127.0.0.1:7401", c)
	sc.Backup = true
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{sb, sc}}))
	echo, closeC := openSession(t, v, "", bind.Addr.String(), "in-b")
	defer closeC()
	testns.Run(t, "ip", "netns", "del", b)
	v.reg.Resync()
	eventually(t, "connection into deleted namespace closed", func() error {
		if echo("z") == nil {
			return errors.New("still open")
		}
		return nil
	})
	expectTag(v, "", bind.Addr.String(), "in-c")
}

// TestMissingNamespaceAtStart: a bind in a namespace that does not exist
// yet starts listening as soon as it appears.
func TestMissingNamespaceAtStart(t *testing.T) {
	testns.RequireRoot(t)
	a := testns.Name("L")
	t.Cleanup(func() { testns.Delete(a) })
	v := newEnv(t, a)
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:7500"), Namespace: a}
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7501", a)}}))
	v.waitLog("namespace does not exist yet")
	if l := v.e.Listeners(); len(l) != 1 || l[0].Listening {
		t.Fatalf("listener state %+v", l)
	}
	testns.Run(t, "ip", "netns", "add", a)
	testns.Run(t, "ip", "-n", a, "link", "set", "lo", "up")
	v.reg.Resync()
	v.serve(a, "127.0.0.1:7501", "late")
	expectTag(v, a, "127.0.0.1:7500", "late")
}

// TestMaxConnQueues: with maxconn 1 a second client is not refused: it
// waits in the backlog and is served when the first leaves.
func TestMaxConnQueues(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7601", "s")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7601", b)}})
	sp.Frontends[0].MaxConn = 1
	v.e.Apply(sp)
	echo1, close1 := openSession(t, v, "", bind.Addr.String(), "s")
	if err := echo1("one"); err != nil {
		t.Fatal(err)
	}
	c2, err := v.dial("", bind.Addr.String())
	if err != nil {
		t.Fatalf("second client refused instead of queued: %v", err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2)
	if n, err := c2.Read(buf); err == nil {
		t.Fatalf("second client served while maxconn=1 is in use (%q)", buf[:n])
	}
	close1()
	c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c2)
	if tag, err := r.ReadString('\n'); err != nil || tag != "s\n" {
		t.Fatalf("queued client not served after the first left: %q %v", tag, err)
	}
}

// TestIdleTimeoutAndHalfClose: an idle connection is closed after the
// client timeout; a half-closed one still delivers the reply.
func TestIdleTimeoutAndHalfClose(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7701", "s")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:7701", b)}})
	sp.Frontends[0].ClientTimeout = 300 * time.Millisecond
	v.e.Apply(sp)

	echo, closeC := openSession(t, v, "", bind.Addr.String(), "s")
	defer closeC()
	// Activity keeps it open past the timeout...
	for i := 0; i < 4; i++ {
		time.Sleep(150 * time.Millisecond)
		if err := echo("busy"); err != nil {
			t.Fatalf("active connection closed after %d×150ms: %v", i+1, err)
		}
	}
	// ...silence closes it.
	time.Sleep(700 * time.Millisecond)
	if echo("idle?") == nil {
		t.Fatal("idle connection still open after 700ms with a 300ms client timeout")
	}
	v.waitLog("termination=client_timeout")

	// Half-close: the client sends and shuts its write side; the echo
	// server's reply and FIN still come back.
	c, err := v.dial("", bind.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "half\n")
	c.CloseWrite()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil || string(all) != "s\nhalf\n" {
		t.Fatalf("after half-close read %q, %v", all, err)
	}
}

// TestConnectFailureTriesNext: a dead server is skipped for the next one.
func TestConnectFailureTriesNext(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:7802", "alive")
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	v.e.Apply(spec1(bind, BackendSpec{Balance: First,
		Servers: []ServerSpec{srv("dead", "127.0.0.1:7801", b), srv("alive", "127.0.0.1:7802", b)}}))
	expectTag(v, "", bind.Addr.String(), "alive")
	// No server at all: the client is closed and the log says why.
	v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{srv("dead", "127.0.0.1:7801", b)}}))
	eventually(t, "refused", func() error {
		if _, err := v.ask("", bind.Addr.String()); err == nil {
			return errors.New("served")
		}
		return nil
	})
	v.waitLog("termination=connect_failed")
}
