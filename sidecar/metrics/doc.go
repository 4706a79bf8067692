// Package metrics exposes the engine's counters, the namespace registry and
// the reconcile loop in the Prometheus text format.
//
// It owns the metric names, their labels and HELP texts, a private
// prometheus.Registry (the global default registry is never touched, so two
// daemons in one test binary do not collide), the /metrics HTTP handler and
// the optional TCP listener behind --metrics-addr.
//
// It must not add anything to the hot path: every engine figure is read from
// a proxy.Snapshot taken when Prometheus scrapes, and converted to constant
// metrics on the spot. It keeps no per-connection state, never imports the
// config or netns packages, and never mutates what it reads. Only the
// reconcile histogram and failure counter are updated as events happen, and
// only by the reconcile loop (ObserveReconcile).
//
// # Cardinality
//
// Every label value comes from configuration or from the namespace registry,
// never from traffic: frontend and tenant names (frontends), backend names,
// server names with the server's namespace, registered namespace names, and a
// fixed set of refusal reasons (see proxy.FrontendStats.Refusals). The number
// of series is therefore bounded by
//
//	frontends × (7 + refusal reasons seen) + backends × 2 + servers × 7 + namespaces × 4 + a few globals
//
// and shrinks again when objects are removed, because nothing is remembered
// between scrapes. A namespace's series go once it has left the registry
// and its last connection has ended; the engine folds its totals into the
// unlabelled nsproxy_namespace_removed_* counters, so sums over namespaces
// plus those stay monotonic. Client addresses, ports and connection ids are
// never labels.
package metrics
