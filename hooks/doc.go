// Package hooks is the contract between the container runtimes' hooks
// (the nsproxy-cni plugin, the OCI hook) and the nsproxy daemon.
//
// It owns three things:
//   - the wire types of an attachment (Attachment, AttachmentKey,
//     PortMapping), whose JSON is identical to the daemon's API types;
//   - Client, a small client of the daemon's attachment endpoints and
//     readyz over its unix socket, with short timeouts so that a hook
//     never blocks a container start for long;
//   - attachment records: one JSON file per attachment in RecordDir,
//     written atomically before the daemon is told, so that a daemon that
//     is down, restarting or slow loses nothing: it replays them at start
//     (ListRecords).
//
// It uses the standard library only (and internal/atomicfile, which does
// too), so that the CNI plugin stays small, and it must never import the
// daemon's packages: the daemon imports it.
package hooks
