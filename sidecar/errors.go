package sidecar

import "errors"

// The domain's sentinel errors. Operations wrap them with what and which
// object; the control API maps them onto status codes (errorBody), the CLI
// prints the message. They live with the domain, not with the HTTP layer.
var (
	// errNotFound: no such object (404).
	errNotFound = errors.New("not found")
	// errConflict: the object exists, or another owner holds the name, or
	// a file defines it (409).
	errConflict = errors.New("conflict")
	// errForbidden: the peer may not touch this tenant's objects (403).
	errForbidden = errors.New("forbidden")
	// ErrInvalidObject: an API object is not acceptable; the details say
	// why (400).
	ErrInvalidObject = errors.New("invalid object")
)

// SourceManifest is the registry source of a tenant's static namespaces.
const SourceManifest = "manifest"
