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

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// The OCI hook: `nsproxy hook oci STAGE` reads the container state (OCI
// runtime spec, "state") on stdin. At createRuntime (or any stage with a
// pid) it names the container's network namespace in the netns directory
// and registers it with the daemon as an attachment, exposing the ports of
// the nsproxy.io/expose annotation; at poststop it unregisters it.

// Annotations the hook reads.
const (
	annExpose    = "nsproxy.io/expose"     // "8080:80,127.0.0.1:8443:443/tcp"
	annTarget    = "nsproxy.io/target"     // "loopback": expose 127.0.0.1 inside the container
	annSendProxy = "nsproxy.io/send-proxy" // "v2": send PROXY v2 to the container
	annTenant    = "nsproxy.io/tenant"
	hookIfName   = "oci" // attachments from the hook have no interface
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
func parseExpose(s string) ([]api.PortMapping, error) {
	var out []api.PortMapping
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
		out = append(out, api.PortMapping{HostPort: h, ContainerPort: c, Protocol: proto, HostIP: hostIP})
	}
	return out, nil
}

// hookNamespaceName is where the hook names the container's namespace.
func hookNamespaceName(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	b := []byte("oci-" + id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

func cmdHook(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "oci" {
		fmt.Fprintln(stderr, "usage: nsproxy hook oci [createRuntime|poststop] [--socket S] [--netns-dir D]")
		return 2
	}
	fs := flag.NewFlagSet("hook oci", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", envOr("NSPROXY_SOCKET", api.DefaultSocket), "daemon control socket")
	dir := fs.String("netns-dir", netns.DefaultDir, "where the container's namespace is named")
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
	c := api.NewClient(*socket, api.WithTimeout(5*time.Second))
	defer c.Close()
	ctx := context.Background()
	switch {
	case stage == "poststop" || stage == "" && st.Status == "stopped":
		err = hookStop(ctx, c, *dir, st)
	case st.Pid > 0:
		err = hookStart(ctx, c, *dir, st)
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

func hookStart(ctx context.Context, c *api.Client, dir string, st ociState) error {
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
	name := hookNamespaceName(st.ID)
	netns.Detach(dir, name) // a leftover of a container that died without poststop
	path, err := netns.AttachFD(dir, name, fd)
	if err != nil {
		return err
	}
	ips := namespaceIPs(path)
	meta := map[string]string{"bundle": st.Bundle}
	for k, v := range st.Annotations {
		if strings.HasPrefix(k, "nsproxy.io/") {
			meta[k] = v
		}
	}
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: st.ID, IfName: hookIfName}, Netns: path,
		Name: name, Source: api.SourceOCI, Tenant: st.Annotations[annTenant], IPs: ips, PortMappings: mappings, Metadata: meta}
	got, _, err := c.PutAttachment(ctx, a)
	if err != nil {
		netns.Detach(dir, name)
		return err
	}
	for _, p := range got.Problems {
		fmt.Fprintln(os.Stderr, "nsproxy hook: warning:", p)
	}
	return nil
}

func hookStop(ctx context.Context, c *api.Client, dir string, st ociState) error {
	err := c.DeleteAttachment(ctx, api.AttachmentKey{ContainerID: st.ID, IfName: hookIfName})
	if derr := netns.Detach(dir, hookNamespaceName(st.ID)); derr != nil && err == nil {
		err = derr
	}
	return err
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
