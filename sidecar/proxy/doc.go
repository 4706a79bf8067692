// Package proxy is the engine: listeners inside namespaces, the choice of a
// server, the dial inside the server's namespace, and the byte pump between
// the two sockets.
//
// It takes plain resolved specs (Spec) and never reads configuration files;
// it resolves namespaces only through a netns.Registry, at the moment a
// socket is needed, and ties every listener and connection to the context
// of the namespace handles it uses, so that a namespace that goes away takes
// everything of its own with it. No connection costs a goroutine: a plain
// bind's is set up on the listener's accept goroutine (server choice, a
// non-blocking connect started inside the server's namespace); an
// accept-proxy bind's goes to a loop at once, which reads the PROXY header
// incrementally and has a connector (one per loop) start the connect.
// Established connections belong to event
// loops (evloop.go), not goroutines: raw non-blocking sockets, epoll,
// timers in a heap; bytes move with read/write through a loop's buffer or,
// for bulk, with splice(2) through pipes leased from a pool.
package proxy
