package metrics

import "github.com/prometheus/client_golang/prometheus"

// Label sets. Label names match the slog keys of DESIGN.md decision 8 where
// one exists.
var (
	frontendLabels = []string{"frontend", "tenant"}
	refusalLabels  = []string{"frontend", "tenant", "reason"}
	backendLabels  = []string{"backend"}
	serverLabels   = []string{"backend", "server", "netns"}
	netnsLabels    = []string{"netns"}
)

// Metric names follow HAProxy's own exporter where one exists
// (haproxy_frontend_bytes_in_total, ...), so dashboards carry over.
var (
	frontendCurrent = desc("frontend_connections_current",
		"Connections open on the frontend.", frontendLabels)
	frontendTotal = desc("frontend_connections_total",
		"Connections accepted by the frontend, refused ones included.", frontendLabels)
	frontendBytesIn = desc("frontend_bytes_in_total",
		"Bytes copied from clients to servers through the frontend.", frontendLabels)
	frontendBytesOut = desc("frontend_bytes_out_total",
		"Bytes copied from servers to clients through the frontend.", frontendLabels)
	frontendRefusals = desc("frontend_refusals_total",
		"Connections the frontend refused (or, for netns_tlv_ignored, accepted while ignoring the TLV), by reason: "+
			"PROXY header errors (no_header, timeout, malformed, too_large), NETNS TLV rejections "+
			"(bad_namespace, multiple_namespaces, netns_not_allowed, netns_unavailable), tenant (a namespace of another "+
			"tenant), untrusted_source, loop, other.",
		refusalLabels)
	frontendAcceptErrors = desc("frontend_accept_errors_total",
		"Failed accepts on the frontend's listeners (EMFILE, ENFILE, ENOBUFS and the like); each backs the listener off.",
		frontendLabels)
	frontendListenersUp = desc("frontend_listeners_up",
		"Listeners of the frontend that are bound and accepting.", frontendLabels)
	frontendListeners = desc("frontend_listeners_configured",
		"Listeners configured for the frontend (bind lines times namespaces), up or not.", frontendLabels)

	backendTotal = desc("backend_connections_total",
		"Connections established to one of the backend's servers.", backendLabels)
	backendConnectErrors = desc("backend_connect_errors_total",
		"Failed connection attempts to the backend's servers; a connection tries up to three servers, each failure counts.", backendLabels)

	serverUp = desc("server_up",
		"1 if new connections may go to the server: not disabled, weight above 0, its namespace present, "+
			"and its last health check passed (or it is not checked); 0 otherwise. See nsproxy_server_checked.", serverLabels)
	serverChecked = desc("server_checked",
		"1 if health checks run for the server, 0 if it is assumed up.", serverLabels)
	serverCurrent = desc("server_connections_current",
		"Connections open to the server.", serverLabels)
	serverTotal = desc("server_connections_total",
		"Connections established to the server.", serverLabels)
	serverBytesIn = desc("server_bytes_in_total",
		"Bytes copied from clients to the server.", serverLabels)
	serverBytesOut = desc("server_bytes_out_total",
		"Bytes copied from the server to clients.", serverLabels)
	serverConnectErrors = desc("server_connect_errors_total",
		"Failed connection attempts to the server.", serverLabels)

	netnsCurrent = desc("namespace_connections_current",
		"Connections open that use the namespace, on the client or the server side. "+
			"A connection counts in both namespaces when they differ, so sums over netns double-count.",
		netnsLabels)
	netnsTotal = desc("namespace_connections_total",
		"Proxied connections that used the namespace, on the client or the server side.", netnsLabels)
	netnsBytesIn = desc("namespace_bytes_in_total",
		"Bytes copied from clients to servers by connections that used the namespace.", netnsLabels)
	netnsBytesOut = desc("namespace_bytes_out_total",
		"Bytes copied from servers to clients by connections that used the namespace.", netnsLabels)

	netnsRemoved = desc("namespace_removed_total",
		"Namespaces whose nsproxy_namespace_* series were removed because the namespace left the registry "+
			"(an attachment or API namespace deleted, a name dropped from the files); their totals are folded "+
			"into the nsproxy_namespace_removed_* counters.", nil)
	netnsRemovedTotal = desc("namespace_removed_connections_total",
		"nsproxy_namespace_connections_total of the removed namespaces, summed.", nil)
	netnsRemovedBytesIn = desc("namespace_removed_bytes_in_total",
		"nsproxy_namespace_bytes_in_total of the removed namespaces, summed.", nil)
	netnsRemovedBytesOut = desc("namespace_removed_bytes_out_total",
		"nsproxy_namespace_bytes_out_total of the removed namespaces, summed.", nil)

	connectionsCurrent = desc("connections_current",
		"Connections open through the daemon, all frontends together.", nil)
	pooledSockets = desc("pooled_sockets",
		"Sockets made ahead in other namespaces for the event loops to connect (at most 1/16 of the open-file limit, 8 to 256).", nil)
	registryNamespaces = desc("registry_namespaces",
		"Namespaces in the registry (the allowlist for NETNS TLVs, namespace * and hook-driven servers).", nil)
	attachments = desc("attachments",
		"CNI/OCI attachments registered with the daemon.", nil)
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc("nsproxy_"+name, help, labels, nil)
}

// collector turns a Source into constant metrics at scrape time; it holds no
// state of its own, so series vanish as soon as their object is removed.
type collector struct{ src Source }

var _ prometheus.Collector = collector{}

func newCollector(src Source) collector { return collector{src: src} }

// Describe sends only the families src can produce, so the registry's
// consistency checks hold for a partial Source.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	if c.src.Snapshot != nil {
		for _, d := range []*prometheus.Desc{
			frontendCurrent, frontendTotal, frontendBytesIn, frontendBytesOut, frontendRefusals,
			frontendAcceptErrors, frontendListenersUp, frontendListeners,
			backendTotal, backendConnectErrors,
			serverUp, serverChecked, serverCurrent, serverTotal, serverBytesIn, serverBytesOut, serverConnectErrors,
			netnsCurrent, netnsTotal, netnsBytesIn, netnsBytesOut,
			netnsRemoved, netnsRemovedTotal, netnsRemovedBytesIn, netnsRemovedBytesOut,
			connectionsCurrent, pooledSockets,
		} {
			ch <- d
		}
	}
	if c.src.RegistrySize != nil {
		ch <- registryNamespaces
	}
	if c.src.Attachments != nil {
		ch <- attachments
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	e := emitter{ch}
	if c.src.RegistrySize != nil {
		e.gauge(registryNamespaces, float64(c.src.RegistrySize()))
	}
	if c.src.Attachments != nil {
		e.gauge(attachments, float64(c.src.Attachments()))
	}
	if c.src.Snapshot == nil {
		return
	}
	s := c.src.Snapshot()
	e.gauge(connectionsCurrent, float64(s.Connections))
	e.gauge(pooledSockets, float64(s.PooledSockets))
	for _, f := range s.Frontends {
		e.gauge(frontendCurrent, float64(f.Current), f.Name, f.Tenant)
		e.counter(frontendTotal, f.Total, f.Name, f.Tenant)
		e.counter(frontendBytesIn, f.BytesIn, f.Name, f.Tenant)
		e.counter(frontendBytesOut, f.BytesOut, f.Name, f.Tenant)
		for reason, n := range f.Refusals {
			e.counter(frontendRefusals, n, f.Name, f.Tenant, reason)
		}
		e.counter(frontendAcceptErrors, f.AcceptErrors, f.Name, f.Tenant)
		up := 0
		for _, l := range f.Listeners {
			if l.Listening {
				up++
			}
		}
		e.gauge(frontendListenersUp, float64(up), f.Name, f.Tenant)
		e.gauge(frontendListeners, float64(len(f.Listeners)), f.Name, f.Tenant)
	}
	for _, b := range s.Backends {
		e.counter(backendTotal, b.Total, b.Name)
		e.counter(backendConnectErrors, b.ConnectErrors, b.Name)
		for _, sv := range b.Servers {
			lv := []string{b.Name, sv.Name, serverNetns(sv.Namespace)}
			e.gauge(serverUp, boolFloat(sv.Up), lv...)
			e.gauge(serverChecked, boolFloat(sv.Checked), lv...)
			e.gauge(serverCurrent, float64(sv.Active), lv...)
			e.counter(serverTotal, sv.Total, lv...)
			e.counter(serverBytesIn, sv.BytesIn, lv...)
			e.counter(serverBytesOut, sv.BytesOut, lv...)
			e.counter(serverConnectErrors, sv.ConnectErrors, lv...)
		}
	}
	for _, n := range s.Namespaces {
		e.gauge(netnsCurrent, float64(n.Current), n.Name)
		e.counter(netnsTotal, n.Total, n.Name)
		e.counter(netnsBytesIn, n.BytesIn, n.Name)
		e.counter(netnsBytesOut, n.BytesOut, n.Name)
	}
	r := s.RemovedNamespaces
	e.counter(netnsRemoved, r.Namespaces)
	e.counter(netnsRemovedTotal, r.Total)
	e.counter(netnsRemovedBytesIn, r.BytesIn)
	e.counter(netnsRemovedBytesOut, r.BytesOut)
}

// serverNetns labels a server's namespace as the namespace families do, so
// the two join: "default" for the daemon's own, "*" for the client's.
func serverNetns(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emitter builds constant metrics without MustNewConstMetric: Collect runs
// in a registry goroutine, where a panic on a bad label value (invalid
// UTF-8 in a name) would take the daemon down. The error is reported as an
// invalid metric instead, which the handler logs and skips.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.emit(d, prometheus.GaugeValue, v, labels)
}

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.emit(d, prometheus.CounterValue, float64(v), labels)
}

func (e emitter) emit(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}
