package proxy

import (
	"context"
	"log/slog"
	"time"
)

// logEnd writes the one log line of a connection.
func (s *session) logEnd(err error) {
	s.mu.Lock()
	term, backend := s.term, s.backendName()
	srvName, srvNS := "", ""
	if s.srv != nil {
		srvName = s.srv.spec.Name
	}
	if s.serverNS != nil {
		srvNS = s.serverNS.Label()
	}
	s.mu.Unlock()
	if ce, ok := err.(*connectError); ok && srvName == "" {
		// No server took it: name the last one tried, where it was tried.
		last := ce.last()
		srvName, srvNS = last.server, last.netns
	}
	if term == "" {
		term = "normal"
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	if !s.e.log.Enabled(context.Background(), level) {
		return // build no arguments for a line nobody reads
	}
	args := []any{"tenant", s.fe.Tenant, "frontend", s.fe.Name, "backend", backend, "server", srvName,
		"client", s.src.String(), "client_netns", s.clientNS.Label(), "client_netns_source", s.nsSourceLabel(),
		"server_netns", srvNS, "bytes_in", s.bytesIn.Load(), "bytes_out", s.bytesOut.Load(),
		"duration", time.Since(s.start).Round(time.Microsecond).String(), "termination", term}
	if s.proxyVer > 0 {
		// an int, as before: the line's value type is part of its format
		args = append(args, "proxy_version", int(s.proxyVer))
	}
	if err != nil {
		args = append(args, "err", err.Error())
		s.e.log.Warn("connection", args...)
		return
	}
	s.e.log.Info("connection", args...)
}

// nsSourceLabel says where clientNS came from: listener or tlv.
func (s *session) nsSourceLabel() string {
	if s.tlvNS {
		return "tlv"
	}
	return "listener"
}
