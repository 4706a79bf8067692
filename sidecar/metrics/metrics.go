package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// Source gives the collector what it reads at scrape time. Each function is
// called once per scrape, possibly from several scrapes at once, so it must
// be safe for concurrent use. A nil function leaves its metric families out.
type Source struct {
	// Snapshot copies the engine's counters (proxy.Engine.Snapshot).
	Snapshot func() proxy.Snapshot
	// RegistrySize counts the namespaces in the registry.
	RegistrySize func() int
	// Attachments counts the registered CNI/OCI attachments.
	Attachments func() int
}

// reconcileBuckets span a no-op reload (well under a millisecond) to one that
// waits on namespaces or listeners for tens of seconds.
var reconcileBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

const maxScrapesInFlight = 4

// Metrics is the daemon's Prometheus registry: the engine collector, the
// reconcile instruments and the Go and process collectors. Its methods are
// safe for concurrent use.
type Metrics struct {
	reg               *prometheus.Registry
	reconcileDuration prometheus.Histogram
	reconcileFailures prometheus.Counter
	handler           http.Handler
}

// New builds the registry around src. Nothing is read from src until the
// first scrape.
func New(src Source) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nsproxy_reconcile_duration_seconds",
			Help:    "Time taken by reconcile passes (diffing desired against running state and applying it), failed ones included.",
			Buckets: reconcileBuckets,
		}),
		reconcileFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nsproxy_reconcile_failures_total",
			Help: "Reconcile passes that returned an error.",
		}),
	}
	m.reg.MustRegister(
		newCollector(src),
		m.reconcileDuration,
		m.reconcileFailures,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// ContinueOnError: one bad series (a duplicate or invalid label value
	// from a buggy snapshot) must not blank the whole page; it is logged.
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // promhttp_metric_handler_errors_total
		// Each scrape takes the engine's frontend lock for a moment; a
		// burst of scrapers gets 503s rather than queueing on it.
		MaxRequestsInFlight: maxScrapesInFlight,
	})
	return m
}

// ObserveReconcile records one reconcile pass that took d; a non-nil err
// counts it as a failure too.
func (m *Metrics) ObserveReconcile(d time.Duration, err error) {
	m.reconcileDuration.Observe(d.Seconds())
	if err != nil {
		m.reconcileFailures.Inc()
	}
}

// Handler serves the exposition of m's own registry (never the global one),
// in whatever format the scraper negotiates.
func (m *Metrics) Handler() http.Handler { return m.handler }

// slogPrinter routes promhttp's gather errors to the default slog logger.
type slogPrinter struct{}

func (slogPrinter) Println(v ...any) {
	slog.Warn("metrics: gather", "err", fmt.Sprint(v...))
}
