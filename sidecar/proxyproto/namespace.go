package proxyproto

import (
	"fmt"
	"strconv"
)

// ValidNamespaceName reports whether s may name a network namespace:
// 1 to 255 bytes from [A-Za-z0-9._:-], and neither "." nor "..". Such a name
// can never be a path, so joining it to /var/run/netns/ stays in that
// directory. The same rule applies to names in configuration and in NETNS
// TLVs.
func ValidNamespaceName(s string) bool { return validName(s) }

func validName[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > MaxNamespaceLen {
		return false
	}
	if string(s) == "." || string(s) == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

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
	if !validName(h.RawNamespace) {
		return fmt.Errorf("%w: %s", ErrBadNamespace, quoteForLog(h.RawNamespace))
	}
	h.Namespace = string(h.RawNamespace)
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
