package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// validName reports whether name is a valid section or server name:
// [A-Za-z0-9._:-]+, the characters HAProxy accepts in proxy names and the
// namespace names' (hooks.SanitizeName keeps exactly these), of any length.
func validName(name string) bool {
	return name != "" && hooks.SanitizeName(name) == name
}

const nameRule = "names are made of A-Z a-z 0-9 . _ : -"

// maxTimeout is the largest timeout HAProxy accepts: 2^31-1 milliseconds.
const maxTimeout = math.MaxInt32 * time.Millisecond

// parseDuration parses HAProxy's time format: a decimal integer and an
// optional unit (us, ms, s, m, h, d); no unit means milliseconds. The
// result is > 0 and at most maxTimeout.
func parseDuration(s string) (time.Duration, string) {
	const help = "write a whole number with an optional unit us, ms, s, m, h or d (milliseconds without unit)"
	digits := s
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			digits = s[:i]
			break
		}
	}
	unit := map[string]time.Duration{
		"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
	}[s[len(digits):]]
	if digits == "" || unit == 0 {
		return 0, fmt.Sprintf("invalid duration %q; %s", s, help)
	}
	n, ok := parseDigits(digits, math.MaxInt64)
	if !ok || n > int64(maxTimeout/unit) {
		return 0, fmt.Sprintf("duration %q is too large; the maximum is 2147483647ms (about 24.8 days)", s)
	}
	if n == 0 {
		return 0, fmt.Sprintf("duration %q must be greater than 0; %s", s, help)
	}
	return time.Duration(n) * unit, ""
}

// FormatDuration writes d in the time format parseDuration reads, with the
// largest unit that keeps it whole ("90s", "1500ms", "2h"), so that what the
// API and the CLI print is valid input again (Go's "1m30s" is not). A
// duration that is not a whole number of microseconds is rounded down to
// one; 0 and below give "".
func FormatDuration(d time.Duration) string {
	if d < time.Microsecond {
		return ""
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.unit == 0 {
			return fmt.Sprintf("%d%s", d/u.unit, u.name)
		}
	}
	return fmt.Sprintf("%dus", d/time.Microsecond)
}

// parseDigits parses a non-empty string of decimal digits (no sign) that is
// at most max.
func parseDigits(s string, max int64) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		d := int64(s[i] - '0')
		if n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseCount parses a whole number in [min, max].
func parseCount(s string, min, max int) (int, bool) {
	n, ok := parseDigits(s, int64(max))
	if !ok || n < int64(min) {
		return 0, false
	}
	return int(n), true
}

// addrKind says where an address is written: bind lines need a port and
// take no offsets, server lines take every port form and "*".
type addrKind int

const (
	bindAddr addrKind = iota
	serverAddr
)

// parsedAddr is an address of a bind or server line.
type parsedAddr struct {
	addr   netip.Addr // invalid for a server "*"
	mode   PortMode
	port   uint16
	offset int
}

// parseAddr parses HAProxy's address forms: IPv4, [IPv6], or IPv6 without
// brackets where the last colon separates the port; "*" or an empty host
// means any address. Host names are refused: nothing here may resolve names.
func parseAddr(s string, kind addrKind) (parsedAddr, *problem) {
	switch {
	case s == "":
		// Not "any address": an empty word is a variable that was not set
		// ("$ADDR") or a field left out, and on a server line it would
		// mean the client's destination.
		if kind == bindAddr {
			return parsedAddr{}, problemf(ErrInvalid, "empty address; write ADDR:PORT, e.g. 0.0.0.0:80 or :80")
		}
		return parsedAddr{}, problemf(ErrInvalid, "empty address; write IP[:PORT], e.g. 10.0.0.1:80, or * for the client's destination")
	case strings.Contains(s, "@"):
		return parsedAddr{}, problemf(ErrUnsupported, "address %q: address prefixes such as ipv4@, unix@ or fd@ are not supported; write an IP literal", s)
	case strings.Contains(s, ","):
		if kind == bindAddr {
			return parsedAddr{}, problemf(ErrUnsupported, "address %q: several addresses on one bind line are not supported; write one bind line per address", s)
		}
		return parsedAddr{}, problemf(ErrInvalid, "invalid address %q; write one IP literal", s)
	}

	pa, pr := splitAddr(s, kind)
	if pr != nil {
		// A bare IPv6 address loses its last group to the port: explain.
		if whole, err := netip.ParseAddr(s); err == nil && whole.Is6() {
			if kind == bindAddr {
				return pa, problemf(ErrInvalid, "address %q: the last colon of an IPv6 address separates the port; write [%s]:PORT", s, s)
			}
			return pa, problemf(ErrInvalid, "address %q: the last colon of an IPv6 address separates the port; write [%s] for no port, or [%s]:PORT", s, s, s)
		}
	}
	return pa, pr
}

// splitAddr applies HAProxy's rule, the last ':' not followed by a ']'
// separates the port, then parses both parts.
func splitAddr(s string, kind addrKind) (parsedAddr, *problem) {
	var pa parsedAddr
	host, port := s, ""
	if i := strings.LastIndexAny(s, ":]"); i >= 0 && s[i] == ':' {
		host, port = s[:i], s[i+1:]
	}
	if pr := parsePort(&pa, s, port, kind); pr != nil {
		return pa, pr
	}
	switch {
	case host == "" || (host == "*" && kind == bindAddr):
		pa.addr = netip.IPv4Unspecified()
	case host == "*":
		// Left invalid: the client's destination address.
	default:
		h := host
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		a, err := netip.ParseAddr(h)
		if err != nil {
			return pa, problemf(ErrInvalid, "invalid address %q; use an IP literal such as 10.0.0.1 or [fd00::1] (host names are not resolved)", s)
		}
		if a.Zone() != "" {
			return pa, problemf(ErrUnsupported, "address %q: IPv6 zones are not supported; remove the %%zone", s)
		}
		if kind == bindAddr && a.Is4In6() {
			// An IPv6 listener cannot bind it (v6-only sockets), and it
			// takes the very connections the IPv4 address does.
			return pa, problemf(ErrInvalid, "address %q is an IPv4-mapped IPv6 address, which no listener binds; write %s:%s",
				s, a.Unmap(), port)
		}
		pa.addr = a
	}
	return pa, nil
}

// parsePort parses the port part of an address into pa.
func parsePort(pa *parsedAddr, s, port string, kind addrKind) *problem {
	if port == "" {
		if kind == bindAddr {
			return problemf(ErrInvalid, "address %q has no port; write ADDR:PORT, e.g. 0.0.0.0:80 or :80", s)
		}
		pa.mode = PortFromClient
		return nil
	}
	sign := port[0]
	if sign == '+' || sign == '-' {
		if kind == bindAddr {
			return problemf(ErrInvalid, "address %q: port offsets (+N, -N) are only allowed on server lines; write a port from 1 to 65535", s)
		}
		n, ok := parseCount(port[1:], 1, 65535)
		if !ok {
			return problemf(ErrInvalid, "address %q: invalid port offset %q; write +N or -N with N from 1 to 65535", s, port)
		}
		pa.mode, pa.offset = PortOffset, n
		if sign == '-' {
			pa.offset = -n
		}
		return nil
	}
	if lo, hi, ok := strings.Cut(port, "-"); ok && isDigits(lo) && isDigits(hi) {
		return problemf(ErrUnsupported, "address %q: port ranges are not supported; write one port", s)
	}
	n, ok := parseCount(port, 1, 65535)
	if !ok {
		return problemf(ErrInvalid, "address %q: invalid port %q; write a port from 1 to 65535", s, port)
	}
	pa.mode, pa.port = PortFixed, uint16(n)
	return nil
}

// problem is what is wrong with a value, before the parser adds a position.
// As an error (what the exported Parse functions return), it reads as the
// message and unwraps to its sentinel (ErrInvalid, ErrUnsupported).
type problem struct {
	kind error
	msg  string
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.kind }

// orNil keeps a nil *problem from becoming a non-nil error.
func (p *problem) orNil() error {
	if p == nil {
		return nil
	}
	return p
}

func problemf(kind error, format string, args ...any) *problem {
	return &problem{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// The exported parsers below are the ones the file parser uses, for every
// other syntax (the control API's JSON, the YAML manifests) that writes the
// same values as strings. Their errors say what is wrong with the value and
// what to write, without a position: the caller adds where the value was
// (a FILE:LINE, an API field path). Each error wraps ErrInvalid or
// ErrUnsupported.

// ValidName reports whether name is a valid frontend, backend or server name.
func ValidName(name string) bool { return validName(name) }

// NameRule says what a valid name is made of, for error messages.
const NameRule = nameRule

// ParseDuration parses HAProxy's time format ("30s", "1500ms", "2m"; a
// bare number is milliseconds). FormatDuration writes it back.
func ParseDuration(s string) (time.Duration, error) {
	d, msg := parseDuration(s)
	if msg != "" {
		return 0, &problem{kind: ErrInvalid, msg: msg}
	}
	return d, nil
}

// ParseBindAddr parses a listening address: IPv4:PORT, [IPv6]:PORT,
// *:PORT or :PORT.
func ParseBindAddr(s string) (netip.AddrPort, error) {
	pa, pr := parseAddr(s, bindAddr)
	if pr != nil {
		return netip.AddrPort{}, pr
	}
	return netip.AddrPortFrom(pa.addr, pa.port), nil
}

// ServerAddr is a parsed server address: the fields of a Server it sets.
type ServerAddr struct {
	Addr   netip.Addr // invalid for "*": the client's destination address
	Mode   PortMode
	Port   uint16
	Offset int
}

// ParseServerAddr parses a server address: IP[:PORT], [IPv6][:PORT], "*"
// or "*:PORT", where PORT may also be an offset +N or -N. Without a port,
// the client's destination port is used.
func ParseServerAddr(s string) (ServerAddr, error) {
	pa, pr := parseAddr(s, serverAddr)
	if pr != nil {
		return ServerAddr{}, pr
	}
	return ServerAddr{Addr: pa.addr, Mode: pa.mode, Port: pa.port, Offset: pa.offset}, nil
}

// FormatServerAddr writes the address of s in the form ParseServerAddr
// reads: "10.0.0.1:80", "[fd00::1]", "*:+1000".
func FormatServerAddr(s *Server) string {
	host := "*"
	switch {
	case !s.Addr.IsValid():
	case s.Addr.Is6():
		host = "[" + s.Addr.String() + "]"
	default:
		host = s.Addr.String()
	}
	switch s.PortMode {
	case PortFixed:
		return fmt.Sprintf("%s:%d", host, s.Port)
	case PortOffset:
		return fmt.Sprintf("%s:%+d", host, s.PortOffset)
	}
	return host
}

// ParseBalance parses a load-balancing algorithm.
func ParseBalance(s string) (Balance, error) {
	switch b := Balance(s); b {
	case BalanceRoundRobin, BalanceLeastConn, BalanceSource, BalanceFirst:
		return b, nil
	}
	return "", problemf(ErrUnsupported, "unsupported algorithm %q; supported: roundrobin, leastconn, source, first", s)
}

// ParseSource parses the address of "source ADDR [usesrc clientip]";
// clientIP is the usesrc clientip part, which needs ADDR 0.0.0.0.
func ParseSource(s string, clientIP bool) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	switch {
	case err == nil && addr.Zone() != "":
		return netip.Addr{}, problemf(ErrUnsupported, "address %q: IPv6 zones are not supported; remove the %%zone", s)
	case err != nil:
		if _, err := netip.ParseAddrPort(s); err == nil {
			return netip.Addr{}, problemf(ErrUnsupported, "address %q: source ports are not supported; write source IP", s)
		}
		return netip.Addr{}, problemf(ErrInvalid, "invalid address %q; write an IP literal, or source 0.0.0.0 usesrc clientip", s)
	case clientIP && addr != netip.IPv4Unspecified():
		return netip.Addr{}, problemf(ErrUnsupported, "usesrc clientip needs source 0.0.0.0, not %s; write source 0.0.0.0 usesrc clientip", addr)
	}
	return addr, nil
}

// ParseTrustedProxy parses a network of trusted-proxies: a CIDR, or an
// address for just that address.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		ad, err2 := netip.ParseAddr(s)
		if err2 != nil || ad.Zone() != "" {
			return netip.Prefix{}, problemf(ErrInvalid, "invalid network %q; write an address or CIDR such as 10.0.0.0/8", s)
		}
		pf = netip.PrefixFrom(ad, ad.BitLen())
	}
	return pf.Masked(), nil
}

// ParseBindNamespace checks the namespace of a bind: a registry name ("*"
// is only for servers).
func ParseBindNamespace(s string) (string, error) {
	switch {
	case s == "*":
		return "", problemf(ErrInvalid, "namespace * is only for servers; a listener needs a named namespace")
	case !hooks.ValidName(s):
		return "", problemf(ErrInvalid, "invalid namespace name %q; %s", s, hooks.NameRule)
	}
	return s, nil
}

// ParseServerNamespace parses the namespace of a server: a registry name,
// or "*" (client true) for the client connection's own namespace.
func ParseServerNamespace(s string) (name string, client bool, err error) {
	switch {
	case s == "*":
		return "", true, nil
	case hooks.ValidName(s):
		return s, false, nil
	}
	return "", false, problemf(ErrInvalid, "invalid namespace name %q; %s, or * for the client's namespace", s, hooks.NameRule)
}

// CheckBindFamily checks the v4v6 and v6only options of b against each
// other and its address.
func CheckBindFamily(b Bind) error {
	switch {
	case b.V6Only && b.V4V6:
		return problemf(ErrInvalid, "v4v6 and v6only contradict each other; keep one (without either, :: follows net.ipv6.bindv6only)")
	case b.V6Only && b.Addr.Addr().Is4():
		return problemf(ErrInvalid, "v6only applies to IPv6 addresses (%s is IPv4); remove it", b.Addr)
	}
	return nil
}

func isDigits(s string) bool {
	_, ok := parseDigits(s, math.MaxInt64)
	return ok
}
