package cniplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nsproxy/nsproxy/hooks"
)

// Values of the target key.
const (
	TargetIP       = "ip"       // the container's first IPv4 (the default)
	TargetLoopback = "loopback" // 127.0.0.1 inside the container's namespace
)

// Config is the plugin's entry of a conflist, as the runtime hands it on
// stdin: the network's name and version, the keys below, the capability
// arguments it declared and, for ADD and CHECK, the previous plugin's
// result.
//
//	{"type": "nsproxy-cni", "capabilities": {"portMappings": true},
//	 "socket": "/run/nsproxy/nsproxy.sock", "tenant": "web",
//	 "nameTemplate": "{{.PodNamespace}}_{{.PodName}}", "strict": false,
//	 "target": "ip", "sendProxy": "v2", "hostPorts": "bind"}
//
// Keys are matched case-insensitively (encoding/json), so containerd's
// Go-cased portMappings (HostPort, ContainerPort, Protocol, HostIP) decode.
type Config struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"` // the network
	Type       string `json:"type"`

	// Socket is the daemon's control socket; empty: Plugin.Socket, then
	// hooks.DefaultSocket.
	Socket string `json:"socket"`
	// AttachmentDir holds the attachment records; empty: Plugin.RecordDir,
	// then hooks.RecordDir. The daemon must read the same directory.
	AttachmentDir string `json:"attachmentDir"`
	// Tenant owns the registered namespace (its allowlist); empty: the
	// daemon's default tenant.
	Tenant string `json:"tenant"`
	// NameTemplate names the registered namespace, e.g.
	// "{{.PodNamespace}}_{{.PodName}}" ("_" never occurs in Kubernetes
	// names, so pods never share a name); see NameFields for the fields.
	// Empty, or a result without a letter or digit: the daemon's default
	// cni-<first 12 of the container ID>-<ifname>. A name that is taken
	// does not fail ADD: the daemon gives the attachment another one.
	NameTemplate string `json:"nameTemplate"`
	// Strict fails ADD when the daemon cannot be reached (error 11, try
	// again later). By default ADD succeeds and the daemon picks the
	// attachment up from its record when it starts.
	Strict bool `json:"strict"`
	// Target is where exposed ports go: "ip" (default) or "loopback".
	Target string `json:"target"`
	// SendProxy sends a PROXY header to the container: "", "v1" or "v2".
	SendProxy string `json:"sendProxy"`
	// HostPorts is "bind" (default: the daemon binds each host port) or
	// "adopt" (the runtime reserves host ports itself, as rootful podman
	// does: the daemon serves that reserved socket).
	HostPorts string `json:"hostPorts"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`

	// GC's list of attachments that are still valid. libcni sends both
	// keys (the second is the spec's first spelling); nil: absent.
	ValidAttachments  *[]types.GCAttachment `json:"cni.dev/valid-attachments"`
	LegacyAttachments *[]types.GCAttachment `json:"cni.dev/attachments"`

	RawPrevResult map[string]any `json:"prevResult"`
	// PrevResult is the parsed prevResult, in CNIVersion; nil: none.
	PrevResult types.Result `json:"-"`

	name nameTemplate
}

// RuntimeConfig carries the capability arguments the plugin uses. Only
// the capabilities declared in the plugin's conflist entry reach it:
// "capabilities": {"portMappings": true,
// "io.kubernetes.cri.pod-annotations": true}.
type RuntimeConfig struct {
	PortMappings []hooks.PortMapping `json:"portMappings"`
	// PodAnnotations: the nsproxy.io/* ones become the attachment's
	// metadata (e.g. nsproxy.io/target, nsproxy.io/send-proxy).
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations"`
}

// ParseConfig decodes and validates the plugin's stdin. Its errors are
// *types.Error: 6 (decoding) or 7 (invalid config). When the JSON decodes
// but does not validate, the config is returned with the error, so that
// DEL can still find the socket and the record directory.
func ParseConfig(stdin []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "nsproxy-cni: cannot decode the network config", err.Error())
	}
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name (of the network) is missing"))
	}
	switch c.Target {
	case "", TargetIP, TargetLoopback:
	default:
		errs = append(errs, fmt.Errorf("target %q: use %q or %q", c.Target, TargetIP, TargetLoopback))
	}
	switch c.SendProxy {
	case "", "v1", "v2":
	default:
		errs = append(errs, fmt.Errorf("sendProxy %q: use \"\", \"v1\" or \"v2\"", c.SendProxy))
	}
	switch c.HostPorts {
	case "", "bind", "adopt":
	default:
		errs = append(errs, fmt.Errorf("hostPorts %q: use \"bind\" or \"adopt\" (podman reserves host ports itself)", c.HostPorts))
	}
	if c.Socket != "" && !strings.HasPrefix(c.Socket, "/") {
		errs = append(errs, fmt.Errorf("socket %q: an absolute path is required", c.Socket))
	}
	if c.AttachmentDir != "" && !strings.HasPrefix(c.AttachmentDir, "/") {
		errs = append(errs, fmt.Errorf("attachmentDir %q: an absolute path is required", c.AttachmentDir))
	}
	var err error
	if c.name, err = parseNameTemplate(c.NameTemplate); err != nil {
		errs = append(errs, err)
	}
	for i := range c.RuntimeConfig.PortMappings {
		pm := &c.RuntimeConfig.PortMappings[i]
		pm.Protocol = strings.ToLower(pm.Protocol)
	}
	if len(errs) > 0 {
		return c, types.NewError(types.ErrInvalidNetworkConfig, "nsproxy-cni: invalid config", joinMessages(errs))
	}
	if c.RawPrevResult != nil {
		pc := &types.PluginConf{CNIVersion: c.CNIVersion, RawPrevResult: c.RawPrevResult}
		if err := version.ParsePrevResult(pc); err != nil {
			return c, types.NewError(types.ErrDecodingFailure, "nsproxy-cni: cannot parse prevResult", err.Error())
		}
		c.PrevResult = pc.PrevResult
	}
	return c, nil
}

// NamespaceName is the registry name that NameTemplate gives for f: ""
// means the daemon's default.
func (c *Config) NamespaceName(f NameFields) string { return c.name.execute(f) }

// Valid is GC's set of attachments still valid, from both keys; ok is
// false when the input has neither.
func (c *Config) Valid() (valid map[hooks.AttachmentKey]bool, ok bool) {
	valid = map[hooks.AttachmentKey]bool{}
	for _, l := range []*[]types.GCAttachment{c.ValidAttachments, c.LegacyAttachments} {
		if l == nil {
			continue
		}
		ok = true
		for _, a := range *l {
			valid[hooks.AttachmentKey{ContainerID: a.ContainerID, IfName: a.IfName}] = true
		}
	}
	return valid, ok
}

// joinMessages is the errors' messages, "; "-separated.
func joinMessages(errs []error) string {
	var b bytes.Buffer
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
