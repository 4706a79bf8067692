// Package hooks will hold the events that container runtimes' hooks (the
// nsproxy-cni plugin, the OCI hook) send to the daemon, the client that
// sends them and the durable attachment records. It uses the standard
// library only, so that the CNI plugin stays small. Not built yet: see the
// CNI issue.
package hooks
