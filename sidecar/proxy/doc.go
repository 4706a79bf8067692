// Package proxy is the engine: listeners inside namespaces, the choice of a
// server, the dial inside the server's namespace, and the byte pump between
// the two sockets.
//
// It takes plain resolved specs (Spec) and never reads configuration files;
// it resolves namespaces only through a netns.Registry, at the moment a
// socket is needed, and ties every listener and connection to the context
// of the namespace handles it uses, so that a namespace that goes away takes
// everything of its own with it. No connection costs a goroutine: a
// bind's listening socket is watched by one event loop, which accepts,
// reads a PROXY header incrementally, chooses the server and connects it
// (a socket in another namespace is made ahead by a connector, one per
// loop: a loop never enters a namespace). Established connections belong to event
// loops (evloop.go), not goroutines: raw non-blocking sockets, epoll,
// timers in a heap; bytes move with read/write through a loop's buffer or,
// for bulk, with splice(2) through pipes leased from a pool.
package proxy
