package main

import (
	"net"
	"testing"
)

// TestSameListenAddr: an inherited metrics socket is kept only for the
// address the successor's --metrics-addr asks for; another address, or no
// flag, binds afresh (the old port would otherwise stay bound, unserved).
func TestSameListenAddr(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, tt := range []struct {
		addr net.Addr
		flag string
		want bool
	}{
		{tcp("127.0.0.1:9101"), "127.0.0.1:9101", true},
		{tcp("127.0.0.1:9101"), "127.0.0.1:9102", false},
		{tcp("127.0.0.1:9101"), "127.0.0.2:9101", false},
		{tcp("127.0.0.1:9101"), "", false},
		{tcp("0.0.0.0:9101"), ":9101", true},
		{tcp("127.0.0.1:9101"), ":9101", false},
		{tcp("[::1]:9101"), "[::1]:9101", true},
		{tcp("[::ffff:127.0.0.1]:9101"), "127.0.0.1:9101", true},
		{tcp("127.0.0.1:9101"), "localhost:9101", false}, // names are not resolved: bind afresh
		{tcp("127.0.0.1:9101"), "garbage", false},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "127.0.0.1:9101", false},
	} {
		if got := sameListenAddr(tt.addr, tt.flag); got != tt.want {
			t.Errorf("sameListenAddr(%v, %q) = %v, want %v", tt.addr, tt.flag, got, tt.want)
		}
	}
}
