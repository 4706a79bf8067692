// Package cniplugin holds the ADD, DEL, CHECK, STATUS and GC logic of the
// nsproxy-cni chained plugin, as functions of *skel.CmdArgs that tests call
// without exec (cmd/nsproxy-cni only wires them into skel).
//
// ADD writes an attachment record (package hooks: it survives any
// process's crash; it is not fsynced, since its namespace dies with the
// kernel) and then tells the daemon; the daemon registers the container's namespace and exposes its
// TCP portMappings from the host. DEL always succeeds. The plugin prints
// only its result on stdout; logs go to stderr.
//
// It imports hooks and the CNI library only, never the daemon's packages,
// so that the binary stays small and independent of the daemon's build.
package cniplugin
