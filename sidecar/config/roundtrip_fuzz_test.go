package config

import (
	"testing"
)

// FuzzValueRoundTrip: every value the exported parsers accept prints (as
// the API's GET prints it) in a form they accept again as the same value,
// and no input makes them panic.
func FuzzValueRoundTrip(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[fd00::1]:-10", "*", "*:+1000", "[::]", "0.0.0.0:81", ":80", "fd00::1",
		"90s", "1500ms", "0", "99999999999d", "10.0.0.0/8", "192.168.1.7", "fe80::1%eth0", "10.0.0.1:80-90", "1.2.3.4:80 x-y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sa, err := ParseServerAddr(s); err == nil {
			srv := Server{Addr: sa.Addr, PortMode: sa.Mode, Port: sa.Port, PortOffset: sa.Offset}
			out := FormatServerAddr(&srv)
			back, err := ParseServerAddr(out)
			if err != nil || back != sa {
				t.Fatalf("server address %q = %+v prints %q, which reads as %+v, %v", s, sa, out, back, err)
			}
		}
		if ap, err := ParseBindAddr(s); err == nil {
			if back, err := ParseBindAddr(ap.String()); err != nil || back != ap {
				t.Fatalf("bind address %q = %v reads back as %v, %v", s, ap, back, err)
			}
		}
		if d, err := ParseDuration(s); err == nil {
			if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
				t.Fatalf("duration %q = %v prints %q, which reads as %v, %v", s, d, FormatDuration(d), back, err)
			}
		}
		if p, err := ParseTrustedProxy(s); err == nil {
			if back, err := ParseTrustedProxy(p.String()); err != nil || back != p {
				t.Fatalf("network %q = %v reads back as %v, %v", s, p, back, err)
			}
		}
		if a, err := ParseSource(s, false); err == nil {
			if back, err := ParseSource(a.String(), false); err != nil || back != a {
				t.Fatalf("source %q = %v reads back as %v, %v", s, a, back, err)
			}
		}
		if b, err := ParseBalance(s); err == nil && string(b) != s {
			t.Fatalf("balance %q reads as %q", s, b)
		}
	})
}
