package ocihook

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
)

// ParseExpose reads "HOSTPORT:CONTAINERPORT[/PROTO]" or
// "HOSTIP:HOSTPORT:CONTAINERPORT[/PROTO]", comma separated (like podman -p).
func ParseExpose(s string) ([]hooks.PortMapping, error) {
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
			return nil, fmt.Errorf("%s %q: protocol %q: use tcp or udp", AnnExpose, item, proto)
		}
		var hostIP, hp, cp string
		if strings.HasPrefix(spec, "[") { // [v6]:host:container
			end := strings.Index(spec, "]")
			if end < 0 {
				return nil, fmt.Errorf("%s %q: unclosed [", AnnExpose, item)
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
			return nil, fmt.Errorf("%s %q: write HOSTPORT:CONTAINERPORT or HOSTIP:HOSTPORT:CONTAINERPORT", AnnExpose, item)
		}
		if hostIP != "" {
			if _, err := netip.ParseAddr(hostIP); err != nil {
				return nil, fmt.Errorf("%s %q: host IP %q is not an IP", AnnExpose, item, hostIP)
			}
		}
		h, err1 := strconv.Atoi(hp)
		c, err2 := strconv.Atoi(cp)
		if err1 != nil || err2 != nil || h < 1 || h > 65535 || c < 1 || c > 65535 {
			return nil, fmt.Errorf("%s %q: ports must be numbers from 1 to 65535", AnnExpose, item)
		}
		out = append(out, hooks.PortMapping{HostPort: h, ContainerPort: c, Protocol: proto, HostIP: hostIP})
	}
	return out, nil
}
