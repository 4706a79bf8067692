package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrNoAddress is returned by Listen for an empty address: net.Listen would
// pick every interface and a random port, which is never what an operator
// who forgot --metrics-addr wants.
var ErrNoAddress = errors.New("metrics: no listen address")

// Path is where Serve exposes the metrics.
const Path = "/metrics"

const (
	readHeaderTimeout = 10 * time.Second
	// shutdownTimeout bounds how long Serve waits for scrapes in flight once
	// ctx ends; then it closes their connections.
	shutdownTimeout = 5 * time.Second
)

// Listen opens the TCP listener for Serve on addr ("127.0.0.1:9101",
// "[::1]:0", ...), in the daemon's own network namespace. Port 0 picks a
// free port; ln.Addr() tells which.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, ErrNoAddress
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false) // plain TCP, as the proxy's listeners (netns.Handle.ListenWith)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves Handler at Path on ln until ctx ends, then shuts down
// gracefully (scrapes in flight get shutdownTimeout) and returns nil. It
// takes ownership of ln and closes it. It returns an error only when
// serving fails before ctx ends. When it returns no scrape is running and
// every connection is closed.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-served // http.ErrServerClosed
	return nil
}
