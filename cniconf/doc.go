// Package cniconf chains the nsproxy-cni plugin into the CNI network
// configuration lists (*.conflist) that podman, containerd or any libcni
// runtime already has, takes it out again, and installs the plugin
// binary: the library of `nsproxy install-cni` and `nsproxy uninstall-cni`.
//
// What it promises:
//   - Idempotent: a file that already has the entry is not written at all.
//   - Atomic: the new content replaces the file through atomicfile (mode
//     and owner of the original); the temporary name does not end in
//     .conflist/.conf/.json, so runtimes never load it. Where the
//     directory has podman's cni.lock, it is held while a file changes.
//   - A backup FILE.nsproxy-backup with the original bytes is created
//     before the first change and never overwritten; uninstall deletes it
//     once the file is back to the same content.
//   - Only JSON objects with a "plugins" list are touched; anything else
//     is refused with an error that names what is wrong (ErrNotJSON,
//     ErrNotConflist, ErrCNIVersion, ErrNothingToWrap).
//   - Everything else is preserved: key order, unknown fields, the other
//     plugins and their order (values are carried as raw JSON by the
//     order-preserving editor of jsonobject.go, never through Go structs).
//     Files that change are re-indented with 2 spaces.
//
// Options.ReplacePortmap takes the portmap plugin out of the chain, since
// nsproxy-cni then serves the TCP port mappings. It records what it took
// in the file itself, as the top-level key nsproxyRemovedPlugins
// ([{"index": N, "plugin": {...}}], N counted without nsproxy-cni), which
// libcni and the runtimes ignore and no plugin receives. Uninstall puts
// each entry back at its index and drops the key. The record, not the
// backup, is the source of truth: the backup is taken once, before the
// first change, so it can predate later edits of the file, and a portmap
// missing from a file next to a backup that has one may as well have been
// removed by the administrator. The backup is for a manual restore.
//
// It must not parse flags or print: cmd/nsproxy does, and reports the
// Results.
package cniconf
