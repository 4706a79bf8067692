package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
	"golang.org/x/sys/unix"
)

// Loop guard (issue 9). A server whose address comes from the client
// ("server s *", "namespace *") connects wherever a PROXY header or the
// accepted socket says. When that is one of our own listeners, the new
// connection is accepted, carries a header with the same destination and
// connects again, until maxconn is full and every frontend stops. Two
// checks refuse it, both counted as the refusal reason "loop":
//
//   - before dialing, a destination taken from the client that is one of
//     our listening sockets (same namespace, address and port; a wildcard
//     listener matches every local address of its namespace) is refused;
//   - our own v2 headers towards such destinations carry a NOOP TLV with a
//     random per-daemon id, and an incoming header carrying it is refused:
//     that catches loops through address translation, which the first
//     check cannot see.
//
// The first check costs an atomic load and a bit test per connection, a
// map lookup when the port is one we listen on; the kernel is asked
// whether an address is local only when the port is a wildcard listener's
// in the dialing namespace. The marker only sees loops back into this
// daemon: another daemon writes its own headers and its own marker.

// ErrLoop: the destination is one of nsproxy's own listeners.
var ErrLoop = errors.New("nsproxy: destination is one of nsproxy's own listeners (loop)")

// listenKey is a listening address inside one namespace. Wildcard
// listeners are keyed with the IPv6 unspecified address: Go binds
// 0.0.0.0 and [::] dual-stack alike.
type listenKey struct {
	ns   netns.Identity // FileIdentity: device and inode, no cookie
	addr netip.AddrPort
}

// ownListeners is the set of the engine's listening sockets, written when
// a listener opens or closes and read lock-free per connection. A change
// costs O(1): copying the whole set per listener made a restart with
// 5,000 exposures open its listeners in O(n²) (issue 13).
type ownListeners struct {
	mu    sync.Mutex
	refs  map[listenKey]int // sockets per key
	ports map[uint16]int    // keys per port
	peak  int               // most keys since refs was made (shrunk)
	keys  sync.Map          // listenKey → struct{}: the keys refs holds
	// bits has a bit per port in use, so that most destinations are
	// cleared without hashing a key.
	bits [65536 / 64]atomic.Uint64
}

// listenKeyOf is the key of a socket listening on a in h. A wildcard keeps
// its family: 0.0.0.0 is reached by IPv4 destinations only, :: by IPv6
// ones; a dual-stack [::] socket is added under both (see listenKeysOf).
func listenKeyOf(h *netns.Handle, a netip.AddrPort) listenKey {
	return listenKey{ns: h.FileIdentity(), addr: netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())}
}

// listenKeysOf is every key under which ln's socket is reached: a [::]
// socket without IPV6_V6ONLY (a v4v6 bind, or an adopted or inherited
// socket made that way) also takes IPv4 destinations.
func listenKeysOf(h *netns.Handle, ln *net.TCPListener) []listenKey {
	a := addrPort(ln.Addr())
	keys := []listenKey{listenKeyOf(h, a)}
	if !a.Addr().Is6() || a.Addr().Is4In6() || !a.Addr().IsUnspecified() {
		return keys
	}
	v6only := true
	if raw, err := ln.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil {
				v6only = v != 0
			}
		})
	}
	if !v6only {
		keys = append(keys, listenKeyOf(h, netip.AddrPortFrom(netip.IPv4Unspecified(), a.Port())))
	}
	return keys
}

func (o *ownListeners) add(k listenKey)    { o.change(k, 1) }
func (o *ownListeners) remove(k listenKey) { o.change(k, -1) }

func (o *ownListeners) change(k listenKey, d int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refs == nil {
		o.refs, o.ports = map[listenKey]int{}, map[uint16]int{}
	}
	was := o.refs[k]
	now := was + d
	p := k.addr.Port()
	switch {
	case was <= 0 && now > 0:
		o.refs[k] = now
		o.peak = max(o.peak, len(o.refs))
		o.keys.Store(k, struct{}{})
		if o.ports[p]++; o.ports[p] == 1 {
			o.bits[p/64].Or(1 << (p % 64))
		}
	case was > 0 && now <= 0:
		delete(o.refs, k)
		o.keys.Delete(k)
		if o.ports[p]--; o.ports[p] <= 0 {
			delete(o.ports, p)
			o.bits[p/64].And(^(uint64(1) << (p % 64)))
		}
		if shrunk(len(o.refs), &o.peak) {
			o.refs, o.ports = resized(o.refs), resized(o.ports)
		}
	case now > 0:
		o.refs[k] = now
	}
}

// isOwn reports whether connecting to dst from inside h reaches one of our
// listeners. isLocal answers whether an address is local to h; it is asked
// only when dst's port is a wildcard listener's.
func (o *ownListeners) isOwn(h *netns.Handle, dst netip.AddrPort, isLocal func(netip.Addr) bool) bool {
	if p := dst.Port(); o.bits[p/64].Load()&(1<<(p%64)) == 0 {
		return false
	}
	addr := dst.Addr().Unmap().WithZone("")
	if addr.IsUnspecified() {
		// connect(2) to 0.0.0.0 or :: reaches the host itself.
		addr = netip.IPv6Loopback()
		if dst.Addr().Unmap().Is4() {
			addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	id := h.FileIdentity() // never changes for h, unlike a cookie read that failed and later worked
	if _, ok := o.keys.Load(listenKey{id, netip.AddrPortFrom(addr, dst.Port())}); ok {
		return true
	}
	wildcard := netip.IPv6Unspecified()
	if addr.Is4() {
		wildcard = netip.IPv4Unspecified()
	}
	if _, ok := o.keys.Load(listenKey{id, netip.AddrPortFrom(wildcard, dst.Port())}); !ok {
		return false
	}
	return addr.IsLoopback() || isLocal(addr)
}

// hopMarker is the NOOP TLV value our v2 headers carry when the server's
// address came from the client: a fixed prefix and a random per-engine id.
// Receivers ignore NOOP values (spec §2.2.7).
func newHopMarker() []byte {
	m := append([]byte("nsproxy-hop:"), make([]byte, 8)...)
	if _, err := rand.Read(m[len(m)-8:]); err != nil {
		// Never on Linux ≥ 3.17; a clock is still unlikely to collide.
		binary.BigEndian.PutUint64(m[len(m)-8:], uint64(time.Now().UnixNano()))
	}
	return m
}

// carriesHop reports whether a received header carries our own marker.
func carriesHop(h *proxyproto.Header, marker []byte) bool {
	for _, t := range h.TLVs {
		if t.Type == proxyproto.TypeNoop && bytes.Equal(t.Value, marker) {
			return true
		}
	}
	return false
}

// localInNamespace asks the kernel's routing table inside h whether addr is
// one of h's own addresses (a route of type local), with one netlink
// request. Errors count as "not local": the dial then goes ahead and our
// hop marker is the remaining guard.
func localInNamespace(h *netns.Handle, addr netip.Addr) bool {
	fd, err := h.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	req := routeRequest(addr)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false
	}
	var buf [4096]byte
	n, _, err := unix.Recvfrom(fd, buf[:], 0)
	if err != nil {
		return false
	}
	t, err := routeType(buf[:n])
	return err == nil && t == unix.RTN_LOCAL
}

// routeRequest builds an RTM_GETROUTE request for addr.
func routeRequest(addr netip.Addr) []byte {
	family, bits := byte(unix.AF_INET6), byte(128)
	if addr.Is4() {
		family, bits = unix.AF_INET, 32
	}
	a := addr.AsSlice()
	attrLen := unix.SizeofRtAttr + len(a)
	n := unix.SizeofNlMsghdr + unix.SizeofRtMsg + attrLen
	b := make([]byte, n)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], 1) // sequence
	rt := b[unix.SizeofNlMsghdr:]
	rt[0], rt[1] = family, bits // rtm_family, rtm_dst_len
	at := rt[unix.SizeofRtMsg:]
	ne.PutUint16(at[0:], uint16(attrLen))
	ne.PutUint16(at[2:], unix.RTA_DST)
	copy(at[unix.SizeofRtAttr:], a)
	return b
}

// routeType reads rtm_type from a reply to routeRequest.
func routeType(msg []byte) (byte, error) {
	if len(msg) < unix.SizeofNlMsghdr {
		return 0, fmt.Errorf("netlink reply of %d bytes", len(msg))
	}
	ne := binary.NativeEndian
	switch ne.Uint16(msg[4:]) {
	case unix.NLMSG_ERROR:
		if len(msg) >= unix.SizeofNlMsghdr+4 {
			return 0, fmt.Errorf("route lookup: %w", unix.Errno(-int32(ne.Uint32(msg[unix.SizeofNlMsghdr:]))))
		}
		return 0, errors.New("route lookup failed")
	case unix.RTM_NEWROUTE:
		if len(msg) < unix.SizeofNlMsghdr+unix.SizeofRtMsg {
			return 0, errors.New("short route reply")
		}
		return msg[unix.SizeofNlMsghdr+7], nil // rtm_type
	}
	return 0, fmt.Errorf("unexpected netlink message type %d", ne.Uint16(msg[4:]))
}
