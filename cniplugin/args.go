package cniplugin

import "strings"

// CNIArgs are the CNI_ARGS keys the plugin reads.
type CNIArgs struct {
	PodName             string // K8S_POD_NAME
	PodNamespace        string // K8S_POD_NAMESPACE
	PodUID              string // K8S_POD_UID
	PodInfraContainerID string // K8S_POD_INFRA_CONTAINER_ID
	IgnoreUnknown       bool   // IgnoreUnknown
}

// ParseCNIArgs parses CNI_ARGS ("K=V;K2=V2") leniently: unknown keys are
// ignored whatever IgnoreUnknown says, and so are pairs without "=" and
// empty pairs; a value may contain "="; a later key overrides an earlier
// one. Runtimes append their own keys (podman: IP=, MAC=) to the caller's,
// so a strict parser would fail containers for keys that are none of the
// plugin's business.
func ParseCNIArgs(s string) CNIArgs {
	var a CNIArgs
	for _, pair := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "K8S_POD_NAME":
			a.PodName = v
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case "K8S_POD_UID":
			a.PodUID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.PodInfraContainerID = v
		case "IgnoreUnknown":
			a.IgnoreUnknown = v == "1" || strings.EqualFold(v, "true")
		}
	}
	return a
}
