package proxy

import (
	"errors"
	"net"
)

// Placeholders until the PROXY protocol adapter lands.
func (s *session) readProxyHeader() error {
	s.setTerm("proxy_header")
	return errors.New("accept-proxy is not available yet")
}

func (s *session) writeProxyHeader(c *net.TCPConn, version int) error {
	return errors.New("send-proxy is not available yet")
}
