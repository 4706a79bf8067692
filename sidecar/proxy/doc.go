// Package proxy is the engine: listeners inside namespaces, the choice of a
// server, the dial inside the server's namespace, and the byte pump between
// the two sockets.
//
// It takes plain resolved specs (Spec) and never reads configuration files;
// it resolves namespaces only through a netns.Registry, at the moment a
// socket is needed, and ties every listener and connection to the context
// of the namespace handles it uses, so that a namespace that goes away takes
// everything of its own with it. Bytes move with splice(2): the pump passes
// plain *net.TCPConn values to io.Copy-style calls and never wraps them.
package proxy
