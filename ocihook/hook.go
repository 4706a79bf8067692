package ocihook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// Hook is what one run of the hook needs.
type Hook struct {
	Client    *hooks.Client
	NetnsDir  string // where the container's namespace is named
	RecordDir string // attachment records; "": none
	// Warn gets what the operator should know that does not fail the
	// hook, one message a call; nil drops them.
	Warn func(msg string)
}

// Run acts on the container state st: at poststop (or for a stopped
// container without a stage) it stops, for a state with a pid it starts.
func (h Hook) Run(ctx context.Context, stage string, st State) error {
	switch {
	case stage == "poststop" || stage == "" && st.Status == "stopped":
		return h.stop(ctx, st)
	case st.Pid > 0:
		return h.start(ctx, st)
	}
	return fmt.Errorf("stage %q with status %q and no pid: nothing to do (use createRuntime and poststop)", stage, st.Status)
}

// start names the container's namespace, records the attachment, then
// tells the daemon. A daemon that cannot be reached does not fail the
// container: it replays the record when it starts. A daemon that refuses
// the attachment (invalid) does, and nothing is left behind.
func (h Hook) start(ctx context.Context, st State) error {
	// Open once, then name the opened namespace: the pid can no longer
	// change what we register.
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", st.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container's namespace: %w", err)
	}
	defer unix.Close(fd)
	if where, ok := hostNamespace(fd); ok {
		// --network host: registered as the container's, the host's
		// namespace would be its tenant's to bind and dial in.
		h.warn(fmt.Sprintf("container %s shares the host's network namespace (%s): nothing to register", st.ID, where))
		return nil
	}
	mappings, err := ParseExpose(st.Annotations[AnnExpose])
	if err != nil {
		return err
	}
	file := fileName(st.ID)
	netns.Detach(h.NetnsDir, file) // a leftover of this very container, dead without poststop
	path, err := netns.AttachFD(h.NetnsDir, file, fd)
	if err != nil {
		return err
	}
	meta := map[string]string{"bundle": st.Bundle}
	for k, v := range st.Annotations {
		if strings.HasPrefix(k, hooks.MetaPrefix) && !hooks.IdentityKey(k) {
			meta[k] = v
		}
	}
	a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: st.ID, IfName: IfName}, Netns: path,
		Name: namespaceName(st.ID), Source: hooks.SourceOCI, Tenant: st.Annotations[AnnTenant],
		IPs: namespaceIPs(path), PortMappings: mappings, Metadata: meta}
	recErr := errors.New("no --attachment-dir")
	if h.RecordDir != "" {
		recErr = hooks.WriteRecord(h.RecordDir, a)
	}
	got, err := h.Client.PutAttachment(ctx, a)
	switch {
	case err == nil:
		for _, p := range got.Problems {
			h.warn("warning: " + p)
		}
		if got.Name != "" && got.Name != a.Name {
			h.warn(fmt.Sprintf("namespace name %s is taken; registered as %s", a.Name, got.Name))
			if h.RecordDir != "" && recErr == nil {
				// The record asks for the name given: a restarted daemon
				// gives it to this container again (see cniplugin.Add).
				a.Name = got.Name
				if err := hooks.WriteRecord(h.RecordDir, a); err != nil {
					h.warn(fmt.Sprint("warning: cannot record the namespace name nsproxy gave: ", err))
				}
			}
		}
		return nil
	case hooks.IsRejected(err):
		h.forget(a.AttachmentKey)
		netns.Detach(h.NetnsDir, file)
		return err
	case recErr != nil:
		netns.Detach(h.NetnsDir, file)
		return fmt.Errorf("the attachment was neither recorded (%v) nor registered: %w", recErr, err)
	}
	h.warn(fmt.Sprintf("daemon unavailable; it will pick the attachment up from %s when it starts: %v",
		hooks.RecordPath(h.RecordDir, a.AttachmentKey), err))
	return nil
}

// stop removes the record, the daemon's attachment and the namespace's
// name. Only a name that cannot be removed fails it: a daemon that is
// down drops the attachment at start (no record, no namespace file).
// Without the namespace's file start registered nothing (a host-network
// container, see hostNamespace): the daemon is still asked to remove the
// attachment, but a failure is not reported; a container
// an older hook registered with the host's namespace has its file and is
// removed as any other.
func (h Hook) stop(ctx context.Context, st State) error {
	k := hooks.AttachmentKey{ContainerID: st.ID, IfName: IfName}
	h.forget(k)
	file := fileName(st.ID)
	if _, err := os.Lstat(filepath.Join(h.NetnsDir, file)); errors.Is(err, os.ErrNotExist) {
		// Asked anyway, quietly: an attachment whose name was removed by
		// hand must not stay in the daemon.
		h.Client.DeleteAttachment(ctx, k)
		h.warn(fmt.Sprintf("container %s has no network namespace named by the hook (it shares the host's, or was never registered): nothing to remove", st.ID))
		return nil
	}
	if err := h.Client.DeleteAttachment(ctx, k); err != nil {
		h.warn(fmt.Sprint("warning: cannot tell nsproxy to remove the attachment: ", err))
	}
	return netns.Detach(h.NetnsDir, file)
}

func (h Hook) warn(msg string) {
	if h.Warn != nil {
		h.Warn(msg)
	}
}

func (h Hook) forget(k hooks.AttachmentKey) {
	if h.RecordDir == "" {
		return
	}
	if err := hooks.RemoveRecord(h.RecordDir, k); err != nil {
		h.warn(fmt.Sprint("warning: ", err))
	}
}

// namespaceIPs lists the container's non-loopback addresses.
func namespaceIPs(path string) []string {
	h, err := netns.OpenPath(path, "")
	if err != nil {
		return nil
	}
	defer h.Close()
	var out []string
	h.Do(func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				out = append(out, ipn.IP.String())
			}
		}
		return nil
	})
	return out
}

// hostNamespaces are the network namespaces of a container without one of
// its own: the hook's (the runtime's, whose namespaces hooks run in) and
// init's (the host's, should the runtime itself run in another).
var hostNamespaces = []string{"/proc/self/ns/net", "/proc/1/ns/net"}

// hostNamespace reports whether the namespace fd is one of hostNamespaces
// (same device and inode), and which. One that cannot be read is no match.
func hostNamespace(fd int) (string, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", false
	}
	for _, p := range hostNamespaces {
		var h unix.Stat_t
		if unix.Stat(p, &h) == nil && h.Dev == st.Dev && h.Ino == st.Ino {
			return p, true
		}
	}
	return "", false
}
