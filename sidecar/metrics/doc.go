// Package metrics exposes the engine's counters in the Prometheus text
// format. It reads snapshots at scrape time and adds nothing to the hot path.
package metrics

import _ "github.com/prometheus/client_golang/prometheus"
