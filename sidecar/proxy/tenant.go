package proxy

import (
	"errors"
	"fmt"

	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// Tenant isolation in the data plane is two calls into the registry,
// which decides (netns.Registry.Admit and MayUse); this file only maps
// their answers to refusal reasons. Every engine must keep making both:
// Admit for each NETNS TLV, MayUse before each "namespace *" dial.

// reasonTenant: a connection tried to reach another tenant's namespace.
const reasonTenant = "tenant"

// tlvRefusal is the refusal reason and error for a NETNS TLV naming
// name on a frontend of tenant, or "" and nil when it may select it.
func (e *Engine) tlvRefusal(tenant, name string) (string, error) {
	err := e.reg.Admit(tenant, name)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, netns.ErrOtherTenant):
		return reasonTenant, err
	}
	return reasonNotAllowed, fmt.Errorf("%w: %q", ErrNamespaceNotAllowed, name)
}

// clientNamespaceAllowed checks a "namespace *" dial into h, the
// connection's own namespace: refused (and logged) when h is not of the
// frontend's tenant.
func (s *session) clientNamespaceAllowed(h *netns.Handle) error {
	if err := s.e.reg.MayUse(s.fe.Tenant, h); err != nil {
		s.e.log.Warn("namespace * refused: the connection's namespace is another tenant's", "frontend", s.fe.Name,
			"tenant", s.fe.Tenant, "client", s.src.String(), "netns", h.Label(), "reason", reasonTenant)
		return err
	}
	return nil
}

// refusalReason is the reason a dial error is a refusal (counted per
// frontend, the connection ended) rather than a failed server: "" for
// the latter.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrLoop):
		return reasonLoop
	case errors.Is(err, netns.ErrOtherTenant):
		return reasonTenant
	}
	return ""
}

// tlvRefused sets reason and err when the TLV's namespace may not be
// selected (see tlvRefusal) and reports whether it did.
func (e *Engine) tlvRefused(tenant, name string, reason *string, err *error) bool {
	r, rerr := e.tlvRefusal(tenant, name)
	if rerr == nil {
		return false
	}
	*reason, *err = r, rerr
	return true
}
