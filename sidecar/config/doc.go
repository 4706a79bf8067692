// Package config owns the one configuration model of nsproxy (model.go) and
// the loader for its HAProxy-style syntax: the subset of HAProxy's
// configuration language that the daemon implements (global, defaults,
// namespace_list, frontend, backend and listen sections). Loading lexes the
// files as HAProxy does, resolves defaults sections, parses every value into
// a resolved type (netip.AddrPort, time.Duration, ...) and validates the
// merged result, so the engine never parses strings.
//
// Every problem is reported, not just the first: errors are collected with
// errors.Join. Each problem of a configuration is an *Error carrying the
// file and line ("FILE:LINE: what is wrong; what to do") and wrapping one of
// the sentinel errors (ErrSyntax, ErrUnsupported, ...) for errors.Is; a file
// that cannot be read is reported with its *fs.PathError. An unknown or
// unsupported keyword is always an error, never ignored.
//
// The package only reads files and the process environment ("$VAR" inside
// double quotes). It never touches the network or network namespaces: a
// namespace is only a validated name here; opening it is the job of
// package netns.
package config
