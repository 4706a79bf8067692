// Package cniplugin will hold the ADD/DEL/CHECK/STATUS/GC logic of the
// nsproxy-cni chained plugin, testable without exec. It imports hooks and
// the CNI library only, never the daemon. Not built yet: see the CNI issue.
package cniplugin
