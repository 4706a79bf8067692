package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// TestLoopRefused (issue 9): a destination taken from a PROXY header or
// from the accepted socket that is one of the engine's own listeners is
// refused and counted as "loop", instead of the proxy connecting to itself
// until maxconn is full. Every case ends with a valid client still served.
// maxconn bounds the damage should the guard fail.
func TestLoopRefused(t *testing.T) {
	a := testns.New(t, "A")
	v := newEnv(t, a)
	// A on the allowlist: the NETNS TLV of our own header does not cut
	// the loop short.
	v.reg.SetAllowed([]string{a})
	testns.Addr(t, a, "10.56.0.1/32")
	v.serveHeader(a, "127.0.0.1:7000", "srv")

	star := ServerSpec{Name: "star", PortMode: PortFromClient, ClientNamespace: true, Weight: 1, SendProxy: 2}
	cases := []struct {
		name string
		bind string
		// dst of the looping header; "" sends no header (plain bind).
		loopDst string
		// setup runs before the loop is tried (for the NAT case).
		setup func()
		v4v6  bool // a dual-stack [::] bind: IPv4 destinations reach it too
	}{
		{name: "exact address", bind: "127.0.0.1:7101", loopDst: "127.0.0.1:7101"},
		{name: "wildcard, loopback destination", bind: "0.0.0.0:7102", loopDst: "127.0.0.1:7102"},
		{name: "wildcard, other local address", bind: "0.0.0.0:7103", loopDst: "10.56.0.1:7103"},
		{name: "dual-stack wildcard, ipv4 destination", bind: "[::]:7104", loopDst: "127.0.0.1:7104", v4v6: true},
		{name: "no header: the socket's own address", bind: "127.0.0.1:7105"},
		// A destination that is not ours, translated to our listener: only
		// the hop marker in our own v2 header can tell.
		{name: "own hop behind DNAT", bind: "10.56.0.1:7106", loopDst: "10.56.0.99:7106", setup: func() {
			testns.Run(t, "ip", "-n", a, "route", "add", "10.56.0.99/32", "dev", "lo")
			testns.Exec(t, a, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.56.0.99", "-p", "tcp",
				"-j", "DNAT", "--to-destination", "10.56.0.1")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bind := BindSpec{Addr: netip.MustParseAddrPort(tc.bind), Namespace: a, AcceptProxy: tc.loopDst != "", V4V6: tc.v4v6}
			sp := spec1(bind, BackendSpec{Servers: []ServerSpec{star}})
			sp.MaxConn = 20
			if err := v.e.Apply(sp); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup()
			}
			before := v.e.Refusals("f")[reasonLoop]
			target := bind.Addr
			if target.Addr().IsUnspecified() {
				target = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bind.Addr.Port())
			}
			eventually(t, "listener", func() error {
				c, err := v.dial(a, target.String())
				if err == nil {
					c.Close()
				}
				return err
			})
			eventually(t, "loop refused", func() error {
				var hdr []byte
				if tc.loopDst != "" {
					hdr = v2("192.0.2.7:4000", tc.loopDst, "")
				}
				got, err := v.sendHeader(a, target.String(), append(hdr, "hello\n"...))
				if err == nil {
					return fmt.Errorf("looping connection answered %q", got)
				}
				if n := v.e.Refusals("f")[reasonLoop]; n <= before {
					return fmt.Errorf("loop refusals %d, want more than %d (%v)", n, before, v.e.Refusals("f"))
				}
				return nil
			})
			eventually(t, "no connection left", func() error {
				if n := v.e.Sessions(); n != 0 {
					return fmt.Errorf("%d connections still open: the proxy looped into itself", n)
				}
				return nil
			})
			if tc.loopDst != "" {
				got, err := v.sendHeader(a, target.String(), v2("192.0.2.7:4000", "127.0.0.1:7000", ""))
				if want := fmt.Sprintf("srv v2 src=192.0.2.7:4000 dst=127.0.0.1:7000 netns=%q", a); err != nil || got != want {
					t.Fatalf("valid client after the loop: %q %v", got, err)
				}
			}
		})
	}
	v.waitLog("termination=loop")
}

// TestLoopCheckLeavesOtherDestinations: a wildcard listener's port on an
// address that is not local (a remote server on the same port) is not a
// loop.
func TestLoopCheckLeavesOtherDestinations(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	testns.Veth(t, a, "10.57.0.1/24", b, "10.57.0.2/24")
	v.serve(b, "10.57.0.2:7200", "remote")
	bind := BindSpec{Addr: netip.MustParseAddrPort("0.0.0.0:7200"), Namespace: a, AcceptProxy: true}
	star := ServerSpec{Name: "star", PortMode: PortFromClient, ClientNamespace: true, Weight: 1}
	if err := v.e.Apply(spec1(bind, BackendSpec{Servers: []ServerSpec{star}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remote on the listener's port", func() error {
		got, err := v.sendHeader(a, "127.0.0.1:7200", v2("192.0.2.7:4000", "10.57.0.2:7200", ""))
		if err != nil || got != "remote" {
			return fmt.Errorf("answered %q, %v; refusals %v", got, err, v.e.Refusals("f"))
		}
		return nil
	})
	if n := v.e.Refusals("f")[reasonLoop]; n != 0 {
		t.Fatalf("%d loop refusals for a remote destination", n)
	}
}

// TestLocalInNamespace: the kernel's answer, asked inside the namespace.
func TestLocalInNamespace(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	testns.Addr(t, a, "10.58.0.1/32")
	testns.Veth(t, a, "10.59.0.1/24", b, "10.59.0.2/24")
	h := v.handle(a)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::1", true},
		{"10.58.0.1", true},
		{"10.59.0.1", true},
		{"10.59.0.2", false}, // the peer's
		{"192.0.2.1", false}, // no route at all
		{"2001:db8::1", false},
	} {
		if got := localInNamespace(h, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s local in A: %v, want %v", tc.addr, got, tc.want)
		}
	}
	if localInNamespace(v.handle(b), netip.MustParseAddr("10.58.0.1")) {
		t.Error("A's address is local in B")
	}
}

// TestOwnListeners: exact and wildcard keys, namespaces kept apart,
// reference counts, and the locality question asked only for wildcards.
func TestOwnListeners(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	v := newEnv(t, a, b)
	ha, hb := v.handle(a), v.handle(b)
	var o ownListeners
	asked := 0
	local := func(addr netip.Addr) bool { asked++; return addr == netip.MustParseAddr("10.0.0.1") }
	ap := netip.MustParseAddrPort
	if o.isOwn(ha, ap("127.0.0.1:80"), local) {
		t.Fatal("empty set matched")
	}
	o.add(listenKeyOf(ha, ap("127.0.0.1:80")))
	o.add(listenKeyOf(ha, ap("0.0.0.0:81")))
	o.add(listenKeyOf(hb, ap("[::]:82")))
	o.add(listenKeyOf(hb, ap("[::]:82")))    // a second listener on it
	o.add(listenKeyOf(hb, ap("[::]:84")))    // IPv6 only
	o.add(listenKeyOf(hb, ap("0.0.0.0:82"))) // [::]:82 is dual-stack
	for _, tc := range []struct {
		h    *netns.Handle
		dst  string
		want bool
		ask  bool
	}{
		{ha, "127.0.0.1:80", true, false},
		{ha, "[::ffff:127.0.0.1]:80", true, false},
		{ha, "0.0.0.0:80", true, false}, // connect(2) to 0.0.0.0 is the host
		{ha, "127.0.0.2:80", false, false},
		{hb, "127.0.0.1:80", false, false}, // another namespace
		{ha, "127.9.9.9:81", true, false},  // loopback: local without asking
		{ha, "10.0.0.1:81", true, true},
		{ha, "10.0.0.2:81", false, true},
		{ha, "10.0.0.1:83", false, false},
		{hb, "[::1]:82", true, false},
		{hb, "10.0.0.1:82", true, true}, // dual-stack wildcard
		{hb, "[::1]:84", true, false},
		{hb, "127.0.0.1:84", false, false}, // a v6-only wildcard is not reached over IPv4
		{ha, "[::1]:81", false, false},     // nor 0.0.0.0 over IPv6
	} {
		asked = 0
		if got := o.isOwn(tc.h, ap(tc.dst), local); got != tc.want || (asked > 0) != tc.ask {
			t.Errorf("%s in %s: own %v (asked %d), want %v (ask %v)", tc.dst, tc.h.Label(), got, asked, tc.want, tc.ask)
		}
	}
	o.remove(listenKeyOf(hb, ap("[::]:82")))
	if !o.isOwn(hb, ap("[::1]:82"), local) {
		t.Error("removed with a reference left")
	}
	o.remove(listenKeyOf(hb, ap("[::]:82")))
	if o.isOwn(hb, ap("[::1]:82"), local) {
		t.Error("still there after the last remove")
	}
}

// TestListenKeysOf: a [::] socket is reached over IPv4 only when it is
// dual-stack, whatever made it (a v4v6 bind, an inherited socket).
func TestListenKeysOf(t *testing.T) {
	a := testns.New(t, "A")
	v := newEnv(t, a)
	h := v.handle(a)
	for _, tc := range []struct {
		bind string
		opt  netns.ListenOptions
		want []string
	}{
		{"127.0.0.1:0", netns.ListenOptions{}, []string{"127.0.0.1"}},
		{"0.0.0.0:0", netns.ListenOptions{}, []string{"0.0.0.0"}},
		{"[::]:0", netns.ListenOptions{V6Only: true}, []string{"::"}},
		{"[::]:0", netns.ListenOptions{V4V6: true}, []string{"::", "0.0.0.0"}},
		{"[::]:0", netns.ListenOptions{}, []string{"::", "0.0.0.0"}}, // bindv6only 0
	} {
		ln, err := h.ListenWith(netip.MustParseAddrPort(tc.bind), tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range listenKeysOf(h, ln) {
			got = append(got, k.addr.Addr().String())
		}
		ln.Close()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %+v: keys %v, want %v", tc.bind, tc.opt, got, tc.want)
		}
	}
}

// TestRouteReply: the netlink reply reader, on the replies it may get.
func TestRouteReply(t *testing.T) {
	reply := func(typ uint16, body ...byte) []byte {
		b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
		binary.NativeEndian.PutUint32(b, uint32(unix.SizeofNlMsghdr+len(body)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		return append(b, body...)
	}
	rtm := func(rtype byte) []byte { return []byte{unix.AF_INET, 32, 0, 0, 254, 0, 0, rtype, 0, 0, 0, 0} }
	errno := make([]byte, 4)
	code := -int32(unix.ENETUNREACH)
	binary.NativeEndian.PutUint32(errno, uint32(code))
	for _, tc := range []struct {
		name string
		msg  []byte
		want byte
		err  bool
	}{
		{"local", reply(unix.RTM_NEWROUTE, rtm(unix.RTN_LOCAL)...), unix.RTN_LOCAL, false},
		{"unicast", reply(unix.RTM_NEWROUTE, rtm(unix.RTN_UNICAST)...), unix.RTN_UNICAST, false},
		{"error", reply(unix.NLMSG_ERROR, errno...), 0, true},
		{"short error", reply(unix.NLMSG_ERROR), 0, true},
		{"short route", reply(unix.RTM_NEWROUTE, 1, 2), 0, true},
		{"other type", reply(unix.RTM_NEWADDR, rtm(unix.RTN_LOCAL)...), 0, true},
		{"truncated header", []byte{1, 2, 3}, 0, true},
		{"empty", nil, 0, true},
	} {
		got, err := routeType(tc.msg)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	req := routeRequest(netip.MustParseAddr("10.1.2.3"))
	if len(req) != unix.SizeofNlMsghdr+unix.SizeofRtMsg+unix.SizeofRtAttr+4 ||
		binary.NativeEndian.Uint32(req) != uint32(len(req)) || req[unix.SizeofNlMsghdr+1] != 32 ||
		string(req[len(req)-4:]) != "\x0a\x01\x02\x03" {
		t.Errorf("request %x", req)
	}
	if req6 := routeRequest(netip.MustParseAddr("2001:db8::1")); req6[unix.SizeofNlMsghdr] != unix.AF_INET6 ||
		req6[unix.SizeofNlMsghdr+1] != 128 {
		t.Errorf("v6 request %x", req6)
	}
}

// FuzzRouteType: no reply, however malformed, panics the reader.
func FuzzRouteType(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, unix.SizeofNlMsghdr))
	f.Add(append([]byte{28, 0, 0, 0, unix.RTM_NEWROUTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 12)...))
	f.Add([]byte{20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9b, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, msg []byte) {
		if typ, err := routeType(msg); err != nil && typ != 0 {
			t.Fatalf("type %d with error %v", typ, err)
		}
	})
}
