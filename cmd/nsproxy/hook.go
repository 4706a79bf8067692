package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// The OCI hook: `nsproxy hook oci STAGE` reads the container state (OCI
// runtime spec, "state") on stdin. At createRuntime (or any stage with a
// pid) it names the container's network namespace in the netns directory,
// writes an attachment record, then registers it with the daemon, exposing
// the ports of the nsproxy.io/expose annotation; a daemon that is down
// replays the record when it starts, as it does the CNI plugin's. At
// poststop it removes the record and unregisters it.

// Annotations the hook reads besides the hooks.MetaPrefix ones, which
// become the attachment's metadata (hooks.MetaTarget, hooks.MetaSendProxy).
const (
	annExpose  = hooks.MetaPrefix + "expose" // "8080:80,127.0.0.1:8443:443/tcp"
	annTenant  = hooks.MetaPrefix + "tenant"
	hookIfName = "oci" // attachments from the hook have no interface
)

type ociState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// parseState decodes and checks an OCI state document.
func parseState(b []byte) (ociState, error) {
	var st ociState
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("container state on stdin is not OCI state JSON: %w", err)
	}
	if st.ID == "" {
		return st, errors.New("container state has no id")
	}
	if st.Pid < 0 {
		return st, fmt.Errorf("container state has a negative pid %d", st.Pid)
	}
	return st, nil
}

// parseExpose reads "HOSTPORT:CONTAINERPORT[/PROTO]" or
// "HOSTIP:HOSTPORT:CONTAINERPORT[/PROTO]", comma separated (like podman -p).
func parseExpose(s string) ([]hooks.PortMapping, error) {
	var out []hooks.PortMapping
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		spec, proto, _ := strings.Cut(item, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("%s %q: protocol %q: use tcp or udp", annExpose, item, proto)
		}
		var hostIP, hp, cp string
		if strings.HasPrefix(spec, "[") { // [v6]:host:container
			end := strings.Index(spec, "]")
			if end < 0 {
				return nil, fmt.Errorf("%s %q: unclosed [", annExpose, item)
			}
			hostIP, spec = spec[1:end], strings.TrimPrefix(spec[end+1:], ":")
		}
		parts := strings.Split(spec, ":")
		switch {
		case len(parts) == 2:
			hp, cp = parts[0], parts[1]
		case len(parts) == 3 && hostIP == "":
			hostIP, hp, cp = parts[0], parts[1], parts[2]
		default:
			return nil, fmt.Errorf("%s %q: write HOSTPORT:CONTAINERPORT or HOSTIP:HOSTPORT:CONTAINERPORT", annExpose, item)
		}
		if hostIP != "" {
			if _, err := netip.ParseAddr(hostIP); err != nil {
				return nil, fmt.Errorf("%s %q: host IP %q is not an IP", annExpose, item, hostIP)
			}
		}
		h, err1 := strconv.Atoi(hp)
		c, err2 := strconv.Atoi(cp)
		if err1 != nil || err2 != nil || h < 1 || h > 65535 || c < 1 || c > 65535 {
			return nil, fmt.Errorf("%s %q: ports must be numbers from 1 to 65535", annExpose, item)
		}
		out = append(out, hooks.PortMapping{HostPort: h, ContainerPort: c, Protocol: proto, HostIP: hostIP})
	}
	return out, nil
}

// hookNamespaceName is the registry name the hook asks for: short and
// readable. Two IDs may share it; the daemon then gives one of them
// another name (and the hook's file names stay apart, see hookFileName).
func hookNamespaceName(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return hooks.SanitizeName("oci-" + id)
}

// maxHookFile bounds the file name in the netns directory.
const maxHookFile = 200

// hookFileName is the file in the netns directory that holds the
// container's namespace: one per container ID, so that containers whose
// IDs share a prefix never detach each other. IDs that are not a name as
// they are (other bytes, too long) get a hash of the whole ID.
func hookFileName(id string) string {
	n := "oci-" + hooks.SanitizeName(id)
	if n == "oci-"+id && len(n) <= maxHookFile && id != "" {
		return n
	}
	if len(n) > 40 {
		n = n[:40]
	}
	return hooks.WithSuffix(n, hooks.KeyHash(hooks.AttachmentKey{ContainerID: id, IfName: hookIfName})[:32], maxHookFile)
}

func cmdHook(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "oci" {
		fmt.Fprintln(stderr, "usage: nsproxy hook oci [createRuntime|poststop] [--socket S] [--netns-dir D] [--attachment-dir D]")
		return 2
	}
	fs := flag.NewFlagSet("hook oci", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", envOr("NSPROXY_SOCKET", hooks.DefaultSocket), "daemon control socket")
	dir := fs.String("netns-dir", netns.DefaultDir, "where the container's namespace is named")
	records := fs.String("attachment-dir", hooks.RecordDir, "attachment records, replayed by the daemon at start (its --attachment-dir; \"none\": off)")
	stage := ""
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		stage, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy hook:", err)
		return 1
	}
	st, err := parseState(b)
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy hook:", err)
		return 1
	}
	h := ociHook{c: hooks.NewClient(*socket, hooks.WithTimeout(5*time.Second)), dir: *dir, records: *records, stderr: stderr}
	if h.records == "none" {
		h.records = ""
	}
	ctx := context.Background()
	switch {
	case stage == "poststop" || stage == "" && st.Status == "stopped":
		err = h.stop(ctx, st)
	case st.Pid > 0:
		err = h.start(ctx, st)
	default:
		err = fmt.Errorf("stage %q with status %q and no pid: nothing to do (use createRuntime and poststop)", stage, st.Status)
	}
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy hook:", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ociHook is one run of the hook.
type ociHook struct {
	c       *hooks.Client
	dir     string // netns directory
	records string // attachment records; "": none
	stderr  io.Writer
}

// start names the container's namespace, records the attachment, then
// tells the daemon. A daemon that cannot be reached does not fail the
// container: it replays the record when it starts. A daemon that refuses
// the attachment (invalid) does, and nothing is left behind.
func (h ociHook) start(ctx context.Context, st ociState) error {
	mappings, err := parseExpose(st.Annotations[annExpose])
	if err != nil {
		return err
	}
	// Open once, then name the opened namespace: the pid can no longer
	// change what we register.
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", st.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container's namespace: %w", err)
	}
	defer unix.Close(fd)
	file := hookFileName(st.ID)
	netns.Detach(h.dir, file) // a leftover of this very container, dead without poststop
	path, err := netns.AttachFD(h.dir, file, fd)
	if err != nil {
		return err
	}
	meta := map[string]string{"bundle": st.Bundle}
	for k, v := range st.Annotations {
		if strings.HasPrefix(k, hooks.MetaPrefix) {
			meta[k] = v
		}
	}
	a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: st.ID, IfName: hookIfName}, Netns: path,
		Name: hookNamespaceName(st.ID), Source: hooks.SourceOCI, Tenant: st.Annotations[annTenant],
		IPs: namespaceIPs(path), PortMappings: mappings, Metadata: meta}
	recErr := errors.New("no --attachment-dir")
	if h.records != "" {
		recErr = hooks.WriteRecord(h.records, a)
	}
	got, err := h.c.PutAttachment(ctx, a)
	switch {
	case err == nil:
		for _, p := range got.Problems {
			fmt.Fprintln(h.stderr, "nsproxy hook: warning:", p)
		}
		if got.Name != "" && got.Name != a.Name {
			fmt.Fprintf(h.stderr, "nsproxy hook: namespace name %s is taken; registered as %s\n", a.Name, got.Name)
		}
		return nil
	case hooks.IsRejected(err):
		h.forget(a.AttachmentKey)
		netns.Detach(h.dir, file)
		return err
	case recErr != nil:
		netns.Detach(h.dir, file)
		return fmt.Errorf("the attachment was neither recorded (%v) nor registered: %w", recErr, err)
	}
	fmt.Fprintf(h.stderr, "nsproxy hook: daemon unavailable; it will pick the attachment up from %s when it starts: %v\n",
		hooks.RecordPath(h.records, a.AttachmentKey), err)
	return nil
}

// stop removes the record, the daemon's attachment and the namespace's
// name. Only a name that cannot be removed fails it: a daemon that is
// down drops the attachment at start (no record, no namespace file).
func (h ociHook) stop(ctx context.Context, st ociState) error {
	k := hooks.AttachmentKey{ContainerID: st.ID, IfName: hookIfName}
	h.forget(k)
	if err := h.c.DeleteAttachment(ctx, k); err != nil {
		fmt.Fprintln(h.stderr, "nsproxy hook: warning: cannot tell nsproxy to remove the attachment:", err)
	}
	return netns.Detach(h.dir, hookFileName(st.ID))
}

func (h ociHook) forget(k hooks.AttachmentKey) {
	if h.records == "" {
		return
	}
	if err := hooks.RemoveRecord(h.records, k); err != nil {
		fmt.Fprintln(h.stderr, "nsproxy hook: warning:", err)
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
