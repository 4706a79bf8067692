// Package sdnotify speaks systemd's service notification protocol: one
// datagram per state change to the unix socket named by $NOTIFY_SOCKET
// ("READY=1", "RELOADING=1", "STOPPING=1", "MAINPID=N", "WATCHDOG=1").
//
// It owns the wire format and the watchdog period only. It must not decide
// when a state is reached (the daemon does) and needs no cgo and no
// libsystemd: without $NOTIFY_SOCKET every call is a no-op.
package sdnotify
