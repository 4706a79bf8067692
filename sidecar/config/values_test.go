package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "1", want: time.Millisecond},
		{in: "1500", want: 1500 * time.Millisecond},
		{in: "250us", want: 250 * time.Microsecond},
		{in: "10ms", want: 10 * time.Millisecond},
		{in: "30s", want: 30 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "2h", want: 2 * time.Hour},
		{in: "24d", want: 24 * 24 * time.Hour},
		{in: "2147483647", want: maxTimeout},
		{in: "0", wantErr: "must be greater than 0"},
		{in: "0s", wantErr: "must be greater than 0"},
		{in: "", wantErr: "invalid duration"},
		{in: "s", wantErr: "invalid duration"},
		{in: "10x", wantErr: "invalid duration"},
		{in: "1.5s", wantErr: "invalid duration"},
		{in: "-1s", wantErr: "invalid duration"},
		{in: "10 s", wantErr: "invalid duration"},
		{in: "2147483648", wantErr: "too large"},
		{in: "25d", wantErr: "too large"},
		{in: "99999999999999999999999", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, msg := parseDuration(tt.in)
			if tt.wantErr != "" {
				if !strings.Contains(msg, tt.wantErr) {
					t.Fatalf("parseDuration(%q) = %v, %q; want problem containing %q", tt.in, got, msg, tt.wantErr)
				}
				return
			}
			if msg != "" || got != tt.want {
				t.Fatalf("parseDuration(%q) = %v, %q; want %v", tt.in, got, msg, tt.want)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	any4 := netip.IPv4Unspecified()
	tests := []struct {
		name    string
		in      string
		kind    addrKind
		want    parsedAddr
		wantErr string
		wantIs  error
	}{
		{name: "bind ipv4", in: "10.0.0.1:80", kind: bindAddr, want: parsedAddr{addr: netip.MustParseAddr("10.0.0.1"), port: 80}},
		{name: "bind empty host", in: ":80", kind: bindAddr, want: parsedAddr{addr: any4, port: 80}},
		{name: "bind star", in: "*:80", kind: bindAddr, want: parsedAddr{addr: any4, port: 80}},
		{name: "bind bracketed ipv6", in: "[::1]:8080", kind: bindAddr, want: parsedAddr{addr: netip.IPv6Loopback(), port: 8080}},
		{name: "bind bare ipv6 last colon is port", in: ":::80", kind: bindAddr, want: parsedAddr{addr: netip.IPv6Unspecified(), port: 80}},
		{name: "bind bare ipv6 full", in: "fd00::1:443", kind: bindAddr, want: parsedAddr{addr: netip.MustParseAddr("fd00::1"), port: 443}},
		{name: "bind max port", in: "1.2.3.4:65535", kind: bindAddr, want: parsedAddr{addr: netip.MustParseAddr("1.2.3.4"), port: 65535}},
		{name: "server no port", in: "10.0.0.1", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("10.0.0.1"), mode: PortFromClient}},
		{name: "server trailing colon", in: "10.0.0.1:", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("10.0.0.1"), mode: PortFromClient}},
		{name: "server star", in: "*", kind: serverAddr, want: parsedAddr{mode: PortFromClient}},
		{name: "server star with port", in: "*:25", kind: serverAddr, want: parsedAddr{port: 25}},
		{name: "server any", in: "0.0.0.0", kind: serverAddr, want: parsedAddr{addr: any4, mode: PortFromClient}},
		{name: "server empty host", in: ":8080", kind: serverAddr, want: parsedAddr{addr: any4, port: 8080}},
		{name: "server plus offset", in: "10.0.0.1:+1000", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("10.0.0.1"), mode: PortOffset, offset: 1000}},
		{name: "server minus offset", in: "[fd00::1]:-5", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("fd00::1"), mode: PortOffset, offset: -5}},
		{name: "server bracketed ipv6 no port", in: "[fd00::1]", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("fd00::1"), mode: PortFromClient}},

		{name: "bind no port", in: "10.0.0.1", kind: bindAddr, wantErr: "has no port", wantIs: ErrInvalid},
		{name: "bind trailing colon", in: "10.0.0.1:", kind: bindAddr, wantErr: "has no port", wantIs: ErrInvalid},
		{name: "bind port zero", in: "10.0.0.1:0", kind: bindAddr, wantErr: `invalid port "0"`, wantIs: ErrInvalid},
		{name: "bind port too big", in: "10.0.0.1:65536", kind: bindAddr, wantErr: `invalid port "65536"`, wantIs: ErrInvalid},
		{name: "bind port not a number", in: "10.0.0.1:http", kind: bindAddr, wantErr: `invalid port "http"`, wantIs: ErrInvalid},
		{name: "bind offset", in: "10.0.0.1:+1", kind: bindAddr, wantErr: "only allowed on server lines", wantIs: ErrInvalid},
		{name: "bind port range", in: "10.0.0.1:80-90", kind: bindAddr, wantErr: "port ranges are not supported", wantIs: ErrUnsupported},
		{name: "bind hostname", in: "localhost:80", kind: bindAddr, wantErr: "use an IP literal", wantIs: ErrInvalid},
		{name: "bind prefix", in: "ipv4@10.0.0.1:80", kind: bindAddr, wantErr: "address prefixes", wantIs: ErrUnsupported},
		{name: "bind unix socket", in: "unix@/run/x.sock", kind: bindAddr, wantErr: "address prefixes", wantIs: ErrUnsupported},
		{name: "bind address list", in: ":80,:443", kind: bindAddr, wantErr: "one bind line per address", wantIs: ErrUnsupported},
		{name: "bind bare ipv6 hint", in: "fd00::1", kind: bindAddr, wantErr: "write [fd00::1]:PORT", wantIs: ErrInvalid},
		{name: "bind star as bracket", in: "[*]:80", kind: bindAddr, wantErr: "invalid address", wantIs: ErrInvalid},
		{name: "server bare ipv6 hint", in: "::1", kind: serverAddr, wantErr: "write [::1] for no port", wantIs: ErrInvalid},
		{name: "server bare ipv6 bad port hint", in: "fd00::abcd", kind: serverAddr, wantErr: "write [fd00::abcd] for no port", wantIs: ErrInvalid},
		{name: "server hostname", in: "db.example.com:5432", kind: serverAddr, wantErr: "host names are not resolved", wantIs: ErrInvalid},
		{name: "server address list", in: "10.0.0.1,10.0.0.2", kind: serverAddr, wantErr: "write one IP literal", wantIs: ErrInvalid},
		{name: "server offset zero", in: "10.0.0.1:+0", kind: serverAddr, wantErr: "invalid port offset", wantIs: ErrInvalid},
		{name: "server offset too big", in: "10.0.0.1:-65536", kind: serverAddr, wantErr: "invalid port offset", wantIs: ErrInvalid},
		{name: "server offset empty", in: "10.0.0.1:+", kind: serverAddr, wantErr: "invalid port offset", wantIs: ErrInvalid},
		{name: "server port zero", in: "10.0.0.1:0", kind: serverAddr, wantErr: `invalid port "0"`, wantIs: ErrInvalid},
		{name: "server zone", in: "[fe80::1%eth0]:80", kind: serverAddr, wantErr: "IPv6 zones are not supported", wantIs: ErrUnsupported},
		{name: "unclosed bracket", in: "[::1:80", kind: serverAddr, wantErr: "invalid address", wantIs: ErrInvalid},
		// Not a range: words after the port (an API field cannot smuggle options in).
		{name: "port with words", in: "10.0.0.1:80 accept-proxy", kind: bindAddr, wantErr: `invalid port "80 accept-proxy"`, wantIs: ErrInvalid},
		{name: "port range", in: "10.0.0.1:80-90", kind: serverAddr, wantErr: "port ranges are not supported", wantIs: ErrUnsupported},
		{name: "bind empty", in: "", kind: bindAddr, wantErr: "empty address; write ADDR:PORT", wantIs: ErrInvalid},
		{name: "server empty", in: "", kind: serverAddr, wantErr: "empty address; write IP[:PORT]", wantIs: ErrInvalid},
		{name: "bind ipv4-mapped", in: "[::ffff:127.0.0.1]:80", kind: bindAddr, wantErr: "IPv4-mapped IPv6 address, which no listener binds; write 127.0.0.1:80", wantIs: ErrInvalid},
		{name: "server ipv4-mapped", in: "[::ffff:10.0.0.1]:80", kind: serverAddr, want: parsedAddr{addr: netip.MustParseAddr("::ffff:10.0.0.1"), port: 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pr := parseAddr(tt.in, tt.kind)
			if tt.wantErr != "" {
				if pr == nil {
					t.Fatalf("parseAddr(%q) = %+v, want problem %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(pr.msg, tt.wantErr) || pr.kind != tt.wantIs {
					t.Fatalf("parseAddr(%q) problem = %v %q, want %v containing %q", tt.in, pr.kind, pr.msg, tt.wantIs, tt.wantErr)
				}
				return
			}
			if pr != nil {
				t.Fatalf("parseAddr(%q) problem %q", tt.in, pr.msg)
			}
			if got != tt.want {
				t.Fatalf("parseAddr(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestFormatDuration: what GET prints is what POST and the files accept.
func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{90 * time.Second, "90s"},
		{time.Minute, "1m"},
		{1500 * time.Millisecond, "1500ms"},
		{2 * time.Hour, "2h"},
		{48 * time.Hour, "2d"},
		{1500 * time.Microsecond, "1500us"},
		{time.Microsecond + 500, "1us"},
		{0, ""},
		{-time.Second, ""},
	} {
		if got := FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// FuzzFormatDuration: every duration the parser accepts prints back to a
// string it parses to the same duration.
func FuzzFormatDuration(f *testing.F) {
	for _, s := range []string{"90s", "1500", "1m", "2d", "7us", "2147483647ms", "24d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		d, problem := parseDuration(s)
		if problem != "" {
			return
		}
		out := FormatDuration(d)
		back, problem := parseDuration(out)
		if problem != "" || back != d {
			t.Fatalf("%q = %v prints %q, which parses to %v (%s)", s, d, out, back, problem)
		}
	})
}

// TestFormatServerAddr: every port form of a server line prints as the
// API's GET shows it, which ParseServerAddr reads back.
func TestFormatServerAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1:80", "10.0.0.1:80"},
		{"10.0.0.1", "10.0.0.1"},
		{"*", "*"},
		{"*:8080", "*:8080"},
		{"*:+1000", "*:+1000"},
		{"fd00::1:-10", "[fd00::1]:-10"},
		{"[fd00::2]", "[fd00::2]"},
		{":81", "0.0.0.0:81"},
		{"[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80"},
	} {
		sa, err := ParseServerAddr(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		s := Server{Addr: sa.Addr, PortMode: sa.Mode, Port: sa.Port, PortOffset: sa.Offset}
		if got := FormatServerAddr(&s); got != tc.want {
			t.Errorf("%q prints %q, want %q", tc.in, got, tc.want)
		}
	}
}
