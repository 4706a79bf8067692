package proxyproto

import (
	"fmt"
	"strconv"

	"github.com/nsproxy/nsproxy/hooks"
)

// applyNamespace enforces the NETNS TLV policy on h.TLVs and fills the
// namespace fields. It leaves h complete even when it returns an error, so
// the caller can log what was refused.
func applyNamespace(h *Header) error {
	count := 0
	for _, t := range h.TLVs {
		if t.Type != TypeNetns {
			continue
		}
		if count == 0 {
			h.RawNamespace = t.Value
		}
		count++
	}
	if count == 0 {
		return nil
	}
	h.HasNamespace = true
	if count > 1 {
		return fmt.Errorf("%w: %d NETNS TLVs", ErrMultipleNamespaces, count)
	}
	// Checked as the string the header keeps: one copy of the name.
	name := string(h.RawNamespace)
	if !hooks.ValidName(name) {
		return fmt.Errorf("%w: %s", ErrBadNamespace, quoteForLog(h.RawNamespace))
	}
	h.Namespace = name
	return nil
}

// quoteForLog renders an untrusted value for an error message, bounded in
// length.
func quoteForLog(b []byte) string {
	const limit = 64
	if len(b) <= limit {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:limit])) + fmt.Sprintf("... (%d bytes)", len(b))
}
