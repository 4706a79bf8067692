// Package netns owns network namespace handles: opening a namespace by name,
// path or pid, keeping its identity while the fd is held, creating sockets
// inside it, and the registry that notices namespaces appearing, disappearing
// and being recreated.
//
// Every namespace switch in the program goes through this package. A thread
// that has entered another namespace is locked to one goroutine of this
// package and either returns to the home namespace or dies with that
// goroutine; no other goroutine ever runs on it. The package never parses
// configuration and never moves payload bytes.
package netns
