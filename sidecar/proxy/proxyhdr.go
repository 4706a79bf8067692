package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/proxyproto"
)

// Refusal reasons that are not proxyproto's own.
const (
	reasonUntrusted      = "untrusted_source"
	reasonNotAllowed     = "netns_not_allowed"
	reasonUnavailable    = "netns_unavailable"
	reasonLenientIgnored = "netns_tlv_ignored" // lenient frontends: counted, not refused
	reasonLoop           = "loop"              // the destination is one of our own listeners
)

var (
	// ErrUntrustedProxy: a connection to an accept-proxy bind from a source
	// outside the frontend's trusted-proxies.
	ErrUntrustedProxy = errors.New("nsproxy: PROXY header from an untrusted source")
	// ErrNamespaceNotAllowed: a NETNS TLV names a namespace off the allowlist.
	ErrNamespaceNotAllowed = errors.New("nsproxy: namespace not on the allowlist (namespace_list)")
)

// reasonCounter counts events by reason; it is touched only on errors.
type reasonCounter struct {
	m sync.Map // string -> *atomic.Uint64
}

func (r *reasonCounter) inc(reason string) {
	v, ok := r.m.Load(reason)
	if !ok {
		v, _ = r.m.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Snapshot returns the counts by reason.
func (r *reasonCounter) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	r.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// checkProxySource refuses a connection to an accept-proxy bind from a
// source outside the frontend's trusted-proxies, before any header byte is
// read.
func (s *session) checkProxySource() error {
	if pol := s.fe.Proxy; len(pol.Trusted) > 0 && !inPrefixes(pol.Trusted, s.src.Addr()) {
		return s.refuseProxy(reasonUntrusted, "proxy_untrusted", fmt.Errorf("%w: %s", ErrUntrustedProxy, s.src.Addr()))
	}
	return nil
}

// refuseProxy counts a refusal by reason and sets the termination.
func (s *session) refuseProxy(reason, term string, err error) error {
	s.front.refusals.inc(reason)
	s.setTerm(term)
	return err
}

// headerParser reads the header of an accept-proxy connection in its loop:
// the size limit of the moment.
func (s *session) headerParser() *proxyproto.Parser {
	return proxyproto.NewParser(proxyproto.ReadOptions{MaxSize: int(s.e.proxyMax.Load())})
}

// headerTimeout bounds the header's arrival (the loop's timer).
func (s *session) headerTimeout() time.Duration {
	if t := s.fe.Proxy.HeaderTimeout; t > 0 {
		return t
	}
	return proxyproto.DefaultReadTimeout
}

// applyProxyHeader applies what the Parser made of the header (hdr, err as
// ReadHeader returns them): client and destination addresses, and the
// connection's namespace when a NETNS TLV names an allowed one. It returns
// the error that refuses the connection, counted and with its termination
// set.
func (s *session) applyProxyHeader(hdr *proxyproto.Header, err error) error {
	pol := s.fe.Proxy
	refuse := s.refuseProxy
	if hdr == nil {
		return refuse(proxyproto.Reason(err), "proxy_header", fmt.Errorf("PROXY header: %w", err))
	}
	s.mu.Lock()
	s.proxyVer = uint8(hdr.Version)
	if !hdr.Local && hdr.Source.IsValid() && hdr.Destination.IsValid() {
		s.src = netip.AddrPortFrom(hdr.Source.Addr().Unmap(), hdr.Source.Port())
		s.dst = netip.AddrPortFrom(hdr.Destination.Addr().Unmap(), hdr.Destination.Port())
	}
	s.mu.Unlock()
	if len(hdr.TLVs) > 0 && carriesHop(hdr, s.e.hop) {
		return refuse(reasonLoop, "loop", fmt.Errorf("%w: the PROXY header carries this daemon's own hop marker", ErrLoop))
	}
	if err == nil && !hdr.HasNamespace {
		return nil
	}
	reason := proxyproto.Reason(err)
	if err == nil {
		switch h, gerr := s.e.reg.Get(hdr.Namespace); {
		case s.e.tlvRefused(s.fe.Tenant, hdr.Namespace, &reason, &err):
		case gerr != nil:
			reason, err = reasonUnavailable, gerr
		default:
			s.mu.Lock()
			s.clientNS, s.tlvNS = h, true
			s.mu.Unlock()
			return nil
		}
	}
	raw := strconv.Quote(string(hdr.RawNamespace))
	if pol.LenientNamespace {
		s.front.refusals.inc(reasonLenientIgnored)
		s.tlvNS = false
		s.e.log.Info("PROXY NETNS TLV ignored (option lenient-netns-tlv): keeping the listener's namespace",
			"frontend", s.fe.Name, "client", s.src.String(), "netns_tlv", raw, "reason", reason, "err", err.Error())
		return nil
	}
	s.e.log.Warn("PROXY NETNS TLV refused", "frontend", s.fe.Name, "client", s.src.String(),
		"netns_tlv", raw, "reason", reason)
	return refuse(reason, "proxy_netns_refused", fmt.Errorf("NETNS TLV %s: %w", raw, err))
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// appendProxyHeader builds the PROXY header for a freshly connected server: the
// client's addresses and, for v2, the client's namespace (never the
// server's) when it is not the default one, as HAProxy does. A v2 header
// towards an address that came from the client carries our loop marker
// too.
func (s *session) appendProxyHeader(buf []byte, version int, fromClient bool) []byte {
	if version == 1 {
		return proxyproto.AppendV1(buf, s.src, s.dst)
	}
	ns := ""
	if !s.clientNS.IsDefault() {
		ns = s.clientNS.Name()
	}
	if fromClient {
		return proxyproto.AppendV2(buf, s.src, s.dst, ns, proxyproto.TLV{Type: proxyproto.TypeNoop, Value: s.e.hop})
	}
	return proxyproto.AppendV2(buf, s.src, s.dst, ns)
}

// Refusals returns the PROXY refusal counts of a frontend by reason.
func (e *Engine) Refusals(frontend string) map[string]uint64 {
	e.mu.Lock()
	fe := e.frontends[frontend]
	e.mu.Unlock()
	if fe == nil {
		return nil
	}
	return fe.refusals.snapshot()
}
