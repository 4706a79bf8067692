package proxy

import (
	"golang.org/x/sys/unix"
)

// The open-file limit and maxconn (issue 9). A connection that cannot get
// its sockets fails after it was accepted (connect_failed) instead of
// waiting in the listen backlog, and accept(2) fails in a loop. So the
// engine keeps the effective global maxconn below what RLIMIT_NOFILE
// allows, as HAProxy derives its maxconn from the limit.

const (
	// fdsPerConn: a proxied connection holds its two sockets; pipes for
	// splice are leased only while bytes are in flight, and all loops
	// together hold at most one pipe (two fds) per connsPerPipe
	// connections (HAProxy's maxpipes = maxconn/4); past that a direction
	// copies through its loop's buffer. So connsPerPipe connections need
	// connsPerPipe*fdsPerConn + 2 fds.
	fdsPerConn   = 2
	connsPerPipe = 4
	// pipesMin: a small maxconn still splices a few bulk streams.
	pipesMin = 8
	// fdsReserved are the daemon's own fds besides listeners and
	// namespaces: standard streams, the runtime's poller, the control and
	// metrics sockets and their clients, state and attachment files,
	// health checks, runtime pipes.
	fdsReserved = 64
)

// connLimitForFDs is the number of connections nofile open files allow
// when reserved of them are taken by other things; never below 1, so that
// a daemon at a tiny limit still serves, one connection at a time.
func connLimitForFDs(nofile uint64, reserved int) int {
	const maxInt = int(^uint(0) >> 1)
	if nofile > uint64(maxInt) {
		nofile = uint64(maxInt)
	}
	avail := int(nofile) - reserved
	if avail < fdsPerConn {
		return 1
	}
	return max(avail/(connsPerPipe*fdsPerConn+2)*connsPerPipe, 1)
}

// pipesFor is the engine-wide cap of splice pipes for a global maxconn.
func pipesFor(maxconn int) int64 {
	return max(int64(maxconn/connsPerPipe), pipesMin)
}

// effectiveMaxConn is the configured maxconn (0: none) capped by fdLimit.
func effectiveMaxConn(configured, fdLimit int) int {
	if configured <= 0 || configured > fdLimit {
		return fdLimit
	}
	return configured
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard one, as the Go
// runtime does at start (a library embedding the engine may have lowered
// it since), and returns the soft limit; 0 if it cannot be read.
func raiseNoFile() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur < r.Max {
		up := unix.Rlimit{Cur: r.Max, Max: r.Max}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &up) == nil {
			r.Cur = r.Max
		}
	}
	return r.Cur
}

// fitMaxConn returns the global maxconn to apply for a spec's maxConn
// and its frontends' binds, and logs when the open-file limit lowers it
// (or sets it, when spec has none) and that changes.
func (e *Engine) fitMaxConn(maxConn, binds int) int {
	if e.nofile == 0 {
		e.pipes.max.Store(1 << 30) // no limit known: pipes are not capped
		return maxConn
	}
	pooled := sockPoolTotalFor(e.nofile)
	e.pools.total.Store(pooled)
	reserved := fdsReserved + int(pooled) + e.reg.Count() + binds // a bind: the listening socket
	fdLimit := connLimitForFDs(e.nofile, reserved)
	eff := effectiveMaxConn(maxConn, fdLimit)
	if eff != e.lastMax {
		args := []any{"maxconn", eff, "maxconn_configured", maxConn, "nofile", e.nofile,
			"fds_per_conn", fdsPerConn, "fds_reserved", reserved}
		switch {
		case maxConn <= 0:
			e.log.Info("maxconn set from the open-file limit (ulimit -n)", args...)
		case eff < maxConn:
			e.log.Warn("maxconn lowered to fit the open-file limit (ulimit -n): more connections wait in the listen backlog", args...)
		}
	}
	e.lastMax = eff
	e.pipes.max.Store(pipesFor(eff))
	return eff
}
