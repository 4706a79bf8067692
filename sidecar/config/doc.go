// Package config owns the one configuration model of nsproxy (model.go) and
// the loader for its HAProxy-style syntax: the subset of HAProxy's
// configuration language that the daemon implements (global, defaults,
// namespace_list, frontend, backend and listen sections). Loading lexes the
// files as HAProxy does, resolves defaults sections, parses every value into
// a resolved type (netip.AddrPort, time.Duration, ...) and validates the
// merged result, so the engine never parses strings.
//
// The other syntaxes (the control API's JSON, the YAML tenant manifests)
// build the same model with the same value parsers (ParseDuration,
// ParseBindAddr, ParseServerAddr, ParseBalance, ParseSource, ...), which
// this package exports so that a value means the same in every syntax, and
// their objects start from Config.Defaults (the files' last defaults
// section) as if written after the files. Validate checks the merged model
// whatever its syntax; a Pos says where each object was written (a file's
// line, an API object's field path, a manifest's line and column).
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
