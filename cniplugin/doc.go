// Package cniplugin holds the ADD/DEL/CHECK/STATUS/GC logic of the
// nsproxy-cni chained plugin, testable without exec. It imports hooks and
// the CNI library only, never the daemon.
package cniplugin

import _ "github.com/containernetworking/cni/pkg/skel"
