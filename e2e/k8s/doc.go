// Package k8s holds the Kubernetes end-to-end tests (build tag e2ek8s):
// the DaemonSet of manifests/kubernetes/ on the private single-node cluster
// that scripts/k8s/e2e.sh (make e2e-k8s) starts. Run through make e2e-k8s.
package k8s
