//go:build !linux

package proxyproto

import "net"

// peek is only implemented on Linux; elsewhere headers are read byte-wise.
func peek(net.Conn, []byte) (n int, ok bool, err error) { return 0, false, nil }
