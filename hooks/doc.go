// Package hooks is the contract between the container runtimes' hooks
// (the nsproxy-cni plugin, the OCI hook), the CLI and the nsproxy daemon.
//
// It owns, once for all of them:
//   - the wire types of an attachment (Attachment, AttachmentKey,
//     PortMapping, Exposure, GCRequest, GCResult), the error body and the
//     constants they carry (DefaultSocket, Source*, StateAvailable,
//     Meta*); the daemon's API (sidecar/api) uses these types as they are;
//   - the namespace-name rule (ValidName) and the one name sanitiser
//     (SanitizeName);
//   - Client, the client of the daemon's unix socket: short timeouts for
//     hooks, so that a hook never blocks a container start for long, and
//     the StatusError every client reports; sidecar/api's client is it
//     with the rest of the API;
//   - attachment records: one JSON file per attachment in RecordDir,
//     written atomically before the daemon is told, so that a daemon that
//     is down, restarting or slow loses nothing: it replays them at start
//     (ListRecords).
//
// Fields are only ever added to the wire types: an older plugin talking to
// a newer daemon, and records an older version wrote, stay understood
// (testdata holds the previous version's output).
//
// It uses the standard library only (and internal/atomicfile, which does
// too), so that the CNI plugin stays small, and it must never import the
// daemon's packages: the daemon imports it.
package hooks
