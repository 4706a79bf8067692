package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/nsproxy/nsproxy/sidecar/metrics"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

func ExampleMetrics_Serve() {
	// In the daemon: Snapshot is engine.Snapshot, RegistrySize the
	// registry's Len, and the address comes from --metrics-addr.
	m := metrics.New(metrics.Source{
		Snapshot:     func() proxy.Snapshot { return proxy.Snapshot{Connections: 2} },
		RegistrySize: func() int { return 4 },
	})
	ln, err := metrics.Listen("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	// ... the daemon runs; on shutdown:
	cancel()
	fmt.Println("serve:", <-done)
	// Output: serve: <nil>
}

func ExampleMetrics_Handler() {
	m := metrics.New(metrics.Source{
		Snapshot: func() proxy.Snapshot {
			return proxy.Snapshot{Connections: 1, Namespaces: []proxy.NamespaceStats{{Name: "blue", Total: 3}}}
		},
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "nsproxy_namespace_connections_total") || strings.HasPrefix(l, "nsproxy_connections_current") {
			fmt.Println(l)
		}
	}
	// Output:
	// nsproxy_connections_current 1
	// nsproxy_namespace_connections_total{netns="blue"} 3
}
