package config

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// An IPv4-mapped IPv6 bind address passes the validator, but the engine's
// listener (netns.Handle.Listen: tcp6, IPV6_V6ONLY) can never bind it: the
// kernel refuses a v4-mapped address on a v6-only socket. The reload is
// acknowledged, the listener never comes up.
func TestReviewMappedBindAcceptedButCannotListen(t *testing.T) {
	const src = "frontend f\n\tbind [::ffff:127.0.0.1]:22150\n\tdefault_backend b\nbackend b\n\tserver s 127.0.0.1:22151\n"
	cfg, err := Parse("t.cfg", []byte(src))
	if err != nil {
		return // refused with a message: the expected behaviour
	}
	b := cfg.Frontends[0].Binds[0]
	h, err := netns.OpenDefault()
	if err != nil {
		t.Skipf("no namespace handle: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	ln, lerr := h.Listen(b.Addr)
	if lerr == nil {
		ln.Close()
		return
	}
	t.Fatalf("validator accepted bind %s (t.cfg:2), but the engine cannot listen on it: %v", b.Addr, lerr)
}

// A UTF-8 byte order mark (what Windows editors write) makes the first
// section header an unknown keyword, and every line of that section then
// errors as "outside any section": the operator sees a cascade of errors
// about lines that are fine, none saying "byte order mark".
func TestReviewBOMFirstLine(t *testing.T) {
	const src = "\xef\xbb\xbffrontend f\n\tbind :22154\n\tdefault_backend b\nbackend b\n\tserver s 127.0.0.1:22155\n"
	_, err := Parse("t.cfg", []byte(src))
	if err == nil {
		return // skipping the BOM as a text editor does is fine
	}
	if n := len(problems(err)); n != 1 || !strings.Contains(strings.ToLower(err.Error()), "byte order mark") {
		t.Fatalf("Parse gave %d error(s), none naming the byte order mark:\n%v", n, err)
	}
}

// A backend source address of one family and a server of the other pass
// the validator; the engine's dial (netns.Handle.Dial with that Source)
// then fails for every connection, so the backend is dead although the
// config "validated".
func TestReviewSourceFamilyMismatchAccepted(t *testing.T) {
	const src = "frontend f\n\tbind 127.0.0.1:22156\n\tdefault_backend b\nbackend b\n\tsource 127.0.0.1\n\tserver s [::1]:22157\n"
	cfg, err := Parse("t.cfg", []byte(src))
	if err != nil {
		return // refused: the expected behaviour
	}
	h, err := netns.OpenDefault()
	if err != nil {
		t.Skipf("no namespace handle: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	srv := cfg.Backends[0].Servers[0]
	dst := netip.AddrPortFrom(srv.Addr, srv.Port)
	ln, err := h.Listen(dst)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	c, derr := h.Dial(context.Background(), dst, netns.DialOptions{Source: netip.AddrPortFrom(cfg.Backends[0].Source, 0)})
	if derr == nil {
		c.Close()
		return
	}
	t.Fatalf("validator accepted source %s with server %s (t.cfg:5-6), but every dial fails: %v", cfg.Backends[0].Source, dst, derr)
}

// server s "" (an empty address, e.g. from an unset "$ADDR") is accepted
// as 0.0.0.0 with the client's port: the transparent mode, not an error.
func TestReviewEmptyServerAddrAccepted(t *testing.T) {
	t.Setenv("REVIEW_UNSET_ADDR", "")
	const src = "frontend f\n\tbind :22158\n\tdefault_backend b\nbackend b\n\tserver s \"$REVIEW_UNSET_ADDR\"\n"
	cfg, err := Parse("t.cfg", []byte(src))
	if err == nil {
		s := cfg.Backends[0].Servers[0]
		t.Fatalf("Parse accepted an empty server address at t.cfg:5: Addr %v PortMode %v", s.Addr, s.PortMode)
	}
	if _, err := ParseServerAddr(""); err == nil {
		t.Fatal(`ParseServerAddr("") = nil error`)
	}
}
