package config

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every *Error returned by Load, Parse and Validate wraps
// exactly one of them.
var (
	// ErrSyntax: a line cannot be read (quotes, escapes, variables), a
	// keyword is unknown or misplaced, or it has the wrong number of arguments.
	ErrSyntax = errors.New("nsproxy: config syntax error")
	// ErrUnsupported: a valid HAProxy feature that nsproxy does not implement
	// (mode http, use_backend, ssl, port ranges, ...).
	ErrUnsupported = errors.New("nsproxy: config feature not supported")
	// ErrInvalid: a value is malformed or out of range (name, address, port,
	// duration, count).
	ErrInvalid = errors.New("nsproxy: invalid config value")
	// ErrDuplicate: a name or listening address is defined twice.
	ErrDuplicate = errors.New("nsproxy: duplicate config definition")
	// ErrUnknownBackend: default_backend names no backend or listen section.
	ErrUnknownBackend = errors.New("nsproxy: unknown backend")
	// ErrIncomplete: a section lacks a required line (bind, default_backend).
	ErrIncomplete = errors.New("nsproxy: incomplete config section")
	// ErrNoFiles: Load was called without a path.
	ErrNoFiles = errors.New("nsproxy: no config file given")
)

// Error is one problem found in a configuration. Its message has the form
// "FILE:LINE: what is wrong; what to do".
type Error struct {
	Pos Pos
	// Msg says what is wrong and what to do, without the position.
	Msg string
	// Err is the sentinel error classifying the problem.
	Err error
}

func (e *Error) Error() string {
	if e.Pos == (Pos{}) {
		return e.Msg // built in code, not read from a file
	}
	return e.Pos.String() + ": " + e.Msg
}

// Unwrap returns the sentinel, so errors.Is(err, ErrSyntax) works on the
// joined error that Load, Parse and Validate return.
func (e *Error) Unwrap() error { return e.Err }

func newError(pos Pos, kind error, format string, args ...any) *Error {
	return &Error{Pos: pos, Err: kind, Msg: fmt.Sprintf(format, args...)}
}

// ErrorAt places the error of one of the exported value parsers (or any
// error wrapping a sentinel of this package) at pos; other errors are
// classified ErrInvalid.
func ErrorAt(pos Pos, err error) *Error {
	kind := ErrInvalid
	for _, k := range []error{ErrSyntax, ErrUnsupported, ErrInvalid, ErrDuplicate, ErrUnknownBackend, ErrIncomplete} {
		if errors.Is(err, k) {
			kind = k
			break
		}
	}
	return &Error{Pos: pos, Msg: err.Error(), Err: kind}
}

// Errorf is an *Error at pos, of the sentinel kind.
func Errorf(pos Pos, kind error, format string, args ...any) *Error {
	return newError(pos, kind, format, args...)
}
