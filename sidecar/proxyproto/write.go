package proxyproto

import (
	"net/netip"
	"strconv"
)

// AppendV1 appends to b the v1 line HAProxy 2.6 sends (send-proxy) for a
// client src connected to dst, and returns the extended slice:
//
//   - both addresses IPv4: "PROXY TCP4 src dst sport dport\r\n";
//   - otherwise "PROXY TCP6 ...", an IPv4 end written IPv4-mapped
//     (::ffff:a.b.c.d), addresses formatted as glibc's inet_ntop does;
//   - either address invalid (unknown): "PROXY UNKNOWN\r\n".
//
// Zones are dropped: the protocol has no room for them.
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	if !src.IsValid() || !dst.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	sa, da := src.Addr().WithZone(""), dst.Addr().WithZone("")
	if sa.Is4() && da.Is4() {
		b = append(b, "PROXY TCP4 "...)
		b = sa.AppendTo(b)
		b = append(b, ' ')
		b = da.AppendTo(b)
	} else {
		b = append(b, "PROXY TCP6 "...)
		b = appendInet6(b, asIPv6(sa))
		b = append(b, ' ')
		b = appendInet6(b, asIPv6(da))
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, '\r', '\n')
}

// appendInet6 formats an IPv6 address like glibc's inet_ntop, which HAProxy
// uses. It matches netip's RFC 5952 text except for the deprecated
// IPv4-compatible addresses (::a.b.c.d, first 96 bits zero, next 16 not),
// which glibc writes with a dotted quad.
func appendInet6(b []byte, a netip.Addr) []byte {
	a16 := a.As16()
	compat := a16[12]|a16[13] != 0
	for _, x := range a16[:12] {
		if x != 0 {
			compat = false
			break
		}
	}
	if !compat {
		return a.AppendTo(b)
	}
	b = append(b, ':', ':')
	return netip.AddrFrom4([4]byte(a16[12:])).AppendTo(b)
}

// AppendV2 appends to b the v2 header HAProxy 2.6 sends (send-proxy-v2) for
// a client src connected to dst, and returns the extended slice:
//
//   - a PROXY command with TCP over IPv4 (0x11) when both addresses are
//     IPv4, else TCP over IPv6 (0x21) with an IPv4 end IPv4-mapped;
//   - when either address is invalid (unknown), a LOCAL command with family
//     UNSPEC and no address block;
//   - when namespace != "", exactly one NETNS TLV, last, whose value is the
//     name without a NUL. It is written even in a LOCAL header, as HAProxy
//     does.
//
// namespace is written verbatim: pass only names that satisfy
// hooks.ValidName (the registry guarantees it), or a receiver such as
// ReadHeader will refuse the header. A name too long for the 16-bit length
// field (over 65,496 bytes, never a valid name) is left out.
//
// tlvs, if any, are written in order after the address block and before
// the NETNS TLV, which stays last as HAProxy writes it; one that would
// overflow the length field is left out. Without tlvs the bytes are
// HAProxy's.
func AppendV2(b []byte, src, dst netip.AddrPort, namespace string, tlvs ...TLV) []byte {
	start := len(b)
	b = append(b, sigV2...)
	switch {
	case !src.IsValid() || !dst.IsValid():
		b = append(b, 0x20|cmdLocal, TransportUnspec, 0, 0)
	case src.Addr().Is4() && dst.Addr().Is4():
		b = append(b, 0x20|cmdProxy, TransportTCP4, 0, 0)
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = appendPorts(b, src.Port(), dst.Port())
	default:
		b = append(b, 0x20|cmdProxy, TransportTCP6, 0, 0)
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = appendPorts(b, src.Port(), dst.Port())
	}
	for _, t := range tlvs {
		if n := len(t.Value); len(b)-start-v2FixedLen+3+n <= 0xFFFF {
			b = append(b, t.Type, byte(n>>8), byte(n))
			b = append(b, t.Value...)
		}
	}
	if n := len(namespace); n > 0 && len(b)-start-v2FixedLen+3+n <= 0xFFFF {
		b = append(b, TypeNetns, byte(n>>8), byte(n))
		b = append(b, namespace...)
	}
	n := len(b) - start - v2FixedLen
	b[start+14], b[start+15] = byte(n>>8), byte(n)
	return b
}

func appendPorts(b []byte, src, dst uint16) []byte {
	return append(b, byte(src>>8), byte(src), byte(dst>>8), byte(dst))
}

// asIPv6 returns a as a 16-byte address, IPv4 becoming IPv4-mapped.
func asIPv6(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }
