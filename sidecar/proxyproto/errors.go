package proxyproto

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Errors returned by ReadHeader, always wrapped with %w: test them with
// errors.Is and label them with Reason.
var (
	// ErrNoHeader: the connection did not start with a PROXY signature (or was
	// closed before a whole signature arrived).
	ErrNoHeader = errors.New("proxyproto: connection does not start with a PROXY header")
	// ErrTimeout: the header was not complete within ReadOptions.Timeout.
	ErrTimeout = errors.New("proxyproto: PROXY header not complete in time")
	// ErrMalformed: a PROXY signature was followed by something the protocol
	// does not allow (bad syntax, version, command, family, length, TLV,
	// checksum, or a header cut short by the peer closing).
	ErrMalformed = errors.New("proxyproto: malformed PROXY header")
	// ErrTooLarge: the header is longer than ReadOptions.MaxSize.
	ErrTooLarge = errors.New("proxyproto: PROXY header too large")
	// ErrBadNamespace: the NETNS TLV is not a valid namespace name (see
	// hooks.ValidName).
	ErrBadNamespace = errors.New("proxyproto: invalid NETNS TLV")
	// ErrMultipleNamespaces: the header carries more than one NETNS TLV.
	ErrMultipleNamespaces = errors.New("proxyproto: more than one NETNS TLV")
)

// reasons maps each sentinel to its metric label. No error returned by this
// package wraps two of them, so the order only matters for foreign errors.
var reasons = [...]struct {
	err    error
	reason string
}{
	{ErrNoHeader, "no_header"},
	{ErrTimeout, "timeout"},
	{ErrMalformed, "malformed"},
	{ErrTooLarge, "too_large"},
	{ErrBadNamespace, "bad_namespace"},
	{ErrMultipleNamespaces, "multiple_namespaces"},
}

// Reason returns a short label for err, fit for a metric label or a log
// field: "no_header", "timeout", "malformed", "too_large", "bad_namespace",
// "multiple_namespaces"; "" for nil and "other" for anything else (for
// example a connection reset).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readError classifies an error met while reading header bytes. inSignature
// tells whether the signature was still incomplete: a peer that closes before
// sending a whole signature never sent a PROXY header; one that closes after
// it sent a truncated one.
func readError(err error, inSignature bool) error {
	switch {
	case isTimeout(err):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if inSignature {
			return fmt.Errorf("%w: connection closed before a complete signature", ErrNoHeader)
		}
		return malformed("connection closed inside the header (%w)", io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("proxyproto: reading header: %w", err)
	}
}
