package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nsproxy/nsproxy/hooks"
)

// SupportedVersions are the CNI spec versions the plugin speaks.
var SupportedVersions = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

// About is what the plugin prints when run without CNI_COMMAND.
const About = "nsproxy-cni: registers container network namespaces and their port mappings with the nsproxy daemon"

// Plugin-specific CNI error codes (the spec leaves 100 and up to plugins).
const (
	// CodeRejected: the daemon refused the attachment (ADD) as invalid,
	// e.g. a netns path that is not a namespace. A namespace name that is
	// taken is no refusal: the daemon gives the attachment another one.
	CodeRejected uint = 100
	// CodeNotRegistered: CHECK found no attachment in the daemon, or no
	// record of it.
	CodeNotRegistered uint = 101
	// CodeNotExposed: CHECK found the attachment, but its namespace is
	// not available, it differs from the request or a TCP port mapping is
	// not exposed (see the error's details for the daemon's problems).
	CodeNotExposed uint = 102
)

// Daemon is what the plugin needs of the nsproxy daemon; *hooks.Client
// is the real one.
type Daemon interface {
	PutAttachment(context.Context, hooks.Attachment) (hooks.Attachment, error)
	Attachment(context.Context, hooks.AttachmentKey) (hooks.Attachment, error)
	Attachments(context.Context) ([]hooks.Attachment, error)
	DeleteAttachment(context.Context, hooks.AttachmentKey) error
	Ready(context.Context) error
}

var _ Daemon = (*hooks.Client)(nil)

// Plugin runs the CNI verbs. Its zero value is the real plugin: result on
// os.Stdout, logs on os.Stderr, the daemon at the config's socket.
type Plugin struct {
	// Stdout receives ADD's result; nil: os.Stdout. Nothing else is ever
	// written to it (skel writes errors).
	Stdout io.Writer
	// Stderr receives the logs; nil: os.Stderr.
	Stderr io.Writer
	// Socket and RecordDir are used when the config has no socket or
	// attachmentDir; empty: hooks.DefaultSocket and hooks.RecordDir.
	Socket    string
	RecordDir string
	// Timeout bounds each request to the daemon; 0: hooks.DefaultTimeout.
	Timeout time.Duration
	// Connect returns the daemon at socket; nil: a hooks.Client.
	Connect func(socket string, timeout time.Duration) Daemon
	// Runtime identifies the runtime that runs the plugin (ADD records
	// it, GC collects only its attachments); empty: the executable of the
	// plugin's parent process, the runtime (see callerRuntime).
	// cmd/nsproxy-cni takes it from EnvRuntime.
	Runtime string
}

// Funcs are the plugin's verbs for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

func (p *Plugin) log(args *skel.CmdArgs) *slog.Logger {
	w := p.Stderr
	if w == nil {
		w = os.Stderr
	}
	l := slog.New(slog.NewTextHandler(w, nil)).With("plugin", "nsproxy-cni")
	if args != nil && args.ContainerID != "" {
		l = l.With("container", args.ContainerID, "ifname", args.IfName)
	}
	return l
}

func (p *Plugin) daemon(c *Config) Daemon {
	socket := firstOf(c.Socket, p.Socket, hooks.DefaultSocket)
	timeout := p.Timeout
	if timeout == 0 {
		timeout = hooks.DefaultTimeout
	}
	if p.Connect != nil {
		return p.Connect(socket, timeout)
	}
	return hooks.NewClient(socket, hooks.WithTimeout(timeout))
}

func (p *Plugin) recordDir(c *Config) string {
	return firstOf(c.AttachmentDir, p.RecordDir, hooks.RecordDir)
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// Add registers the container's namespace and port mappings: it writes the
// attachment record, then tells the daemon, then prints prevResult
// unchanged. A daemon that cannot be reached does not fail ADD unless the
// config is strict (error 11): it replays the record when it starts. A
// daemon that refuses the attachment fails ADD (error 100) and the record
// is removed. An attachment larger than hooks.MaxAttachmentSize fails ADD
// (error 7) and leaves no record. Port conflicts are not refusals: the daemon reports them
// (logged here) and ADD succeeds, because a failed ADD makes the runtime
// run a DEL without prevResult that leaks the other plugins' state.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "nsproxy-cni must be called as a chained plugin",
			"no prevResult: list it after the plugin that creates the interface (e.g. bridge) in a conflist")
	}
	a, err := p.attachment(conf, args)
	if err != nil {
		return err
	}
	log := p.log(args)
	dir := p.recordDir(conf)
	// Too large for the daemon and the record reader alike: fail now,
	// rather than record what the daemon cuts and its replay skips.
	if _, err := hooks.EncodeRecord(a); errors.Is(err, hooks.ErrTooLarge) {
		_ = hooks.RemoveRecord(dir, a.AttachmentKey) // an earlier ADD's
		return types.NewError(types.ErrInvalidNetworkConfig, "nsproxy-cni: the attachment is too large",
			err.Error()+"; publish fewer port mappings or shorten the nsproxy.io/ annotations")
	}
	recErr := hooks.WriteRecord(dir, a)
	if recErr != nil {
		log.Error("cannot write the attachment record", "dir", dir, "err", recErr)
	}
	got, err := p.daemon(conf).PutAttachment(context.Background(), a)
	switch {
	case err == nil:
		for _, pr := range got.Problems {
			log.Warn("attachment registered with a problem", "problem", pr)
		}
		if got.Name != "" && a.Name != "" && got.Name != a.Name {
			log.Warn("namespace name taken; the daemon registered the attachment under another", "requested", a.Name, "name", got.Name)
		}
		if got.Name != "" && got.Name != a.Name && recErr == nil {
			// The record asks for the name given, so that a restarted
			// daemon, which replays records in file order, gives it to
			// this container again, not to the one it was taken from.
			a.Name = got.Name
			if err := hooks.WriteRecord(dir, a); err != nil {
				log.Error("cannot record the namespace name the daemon gave", "name", got.Name, "dir", dir, "err", err)
			}
		}
		log.Info("attachment registered", "netns", a.Netns, "name", got.Name, "exposed", strings.Join(got.Exposed, ","))
	case hooks.IsRejected(err):
		_ = hooks.RemoveRecord(dir, a.AttachmentKey)
		return types.NewError(CodeRejected, "nsproxy refused the attachment", err.Error())
	case recErr != nil:
		return types.NewError(types.ErrIOFailure, "nsproxy-cni: the attachment was neither recorded nor registered",
			fmt.Sprintf("record: %v; daemon: %v", recErr, err))
	case conf.Strict:
		_ = hooks.RemoveRecord(dir, a.AttachmentKey)
		return types.NewError(types.ErrTryAgainLater, "nsproxy daemon unavailable (strict)", err.Error())
	default:
		log.Warn("nsproxy daemon unavailable; it will pick the attachment up from its record when it starts",
			"record", hooks.RecordPath(dir, a.AttachmentKey), "err", err)
	}
	return p.print(conf.PrevResult, conf.CNIVersion)
}

// print writes result in the request's version to Stdout.
func (p *Plugin) print(result types.Result, cniVersion string) error {
	r, err := result.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "nsproxy-cni: cannot convert prevResult", err.Error())
	}
	w := p.Stdout
	if w == nil {
		w = os.Stdout
	}
	return r.PrintTo(w)
}

// attachment builds what ADD registers (and CHECK expects) from the config
// and the environment, after checking CNI_NETNS.
func (p *Plugin) attachment(conf *Config, args *skel.CmdArgs) (hooks.Attachment, error) {
	override := strings.EqualFold(args.NetnsOverride, "true") || args.NetnsOverride == "1"
	netns := args.Netns
	if netns != "" && !filepath.IsAbs(netns) {
		if abs, err := filepath.Abs(netns); err == nil {
			netns = abs
		}
	}
	if err := checkNetns(netns, override); err != nil {
		return hooks.Attachment{}, types.NewError(types.ErrInvalidEnvironmentVariables, "nsproxy-cni: bad CNI_NETNS", err.Error())
	}
	ips, err := containerIPs(conf.PrevResult)
	if err != nil {
		return hooks.Attachment{}, types.NewError(types.ErrDecodingFailure, "nsproxy-cni: cannot read prevResult", err.Error())
	}
	ca := ParseCNIArgs(args.Args)
	short := args.ContainerID
	if len(short) > 12 {
		short = short[:12]
	}
	a := hooks.Attachment{
		AttachmentKey: hooks.AttachmentKey{ContainerID: args.ContainerID, IfName: args.IfName},
		Netns:         netns,
		Name: conf.NamespaceName(NameFields{ContainerID: args.ContainerID, ShortID: short, IfName: args.IfName,
			PodName: ca.PodName, PodNamespace: ca.PodNamespace, PodUID: ca.PodUID, Network: conf.Name}),
		Source:   hooks.SourceCNI,
		Tenant:   conf.Tenant,
		IPs:      ips,
		Metadata: metadata(conf, ca, p.runtime()),
	}
	for _, pm := range conf.RuntimeConfig.PortMappings {
		if pm.HostPort == 0 {
			continue // a containerPort without a hostPort publishes nothing
		}
		a.PortMappings = append(a.PortMappings, pm)
	}
	return a, nil
}

// metadata is the config's defaults, overridden by the pod's nsproxy.io/*
// annotations, overridden by what the plugin itself knows.
func metadata(conf *Config, ca CNIArgs, runtime string) map[string]string {
	m := map[string]string{}
	if conf.Target == TargetLoopback {
		m[hooks.MetaTarget] = TargetLoopback
	}
	if conf.SendProxy != "" {
		m[hooks.MetaSendProxy] = conf.SendProxy
	}
	if conf.HostPorts == "adopt" {
		m[hooks.MetaHostPorts] = "adopt"
	}
	for k, v := range conf.RuntimeConfig.PodAnnotations {
		if strings.HasPrefix(k, hooks.MetaPrefix) {
			m[k] = v
		}
	}
	m[hooks.MetaNetwork] = conf.Name
	for k, v := range map[string]string{hooks.MetaPodName: ca.PodName, hooks.MetaPodNamespace: ca.PodNamespace, hooks.MetaPodUID: ca.PodUID,
		hooks.MetaRuntime: runtime} {
		if v != "" {
			m[k] = v
		} else {
			delete(m, k)
		}
	}
	return m
}

// containerIPs are prevResult's addresses on interfaces inside the
// container (those with a sandbox), or all of them when no address says
// which interface it is on.
func containerIPs(prev types.Result) ([]string, error) {
	r, err := types100.NewResultFromResult(prev)
	if err != nil {
		return nil, err
	}
	var all, inside []string
	for _, ip := range r.IPs {
		if ip == nil || ip.Address.IP == nil {
			continue
		}
		s := ip.Address.String()
		all = append(all, s)
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(r.Interfaces) &&
			r.Interfaces[*ip.Interface] != nil && r.Interfaces[*ip.Interface].Sandbox != "" {
			inside = append(inside, s)
		}
	}
	for _, ip := range r.IPs {
		if ip != nil && ip.Interface != nil {
			return inside, nil
		}
	}
	return all, nil
}

// Del removes the record and the daemon's attachment. It always succeeds:
// the namespace may be gone, CNI_NETNS empty, prevResult missing, the DEL
// repeated or the daemon down (its replay then finds no record); failures
// are logged.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	log := p.log(args)
	conf, err := ParseConfig(args.StdinData)
	if conf == nil {
		log.Warn("cannot parse the config; using the default socket and record directory", "err", err)
		conf = &Config{}
	}
	k := hooks.AttachmentKey{ContainerID: args.ContainerID, IfName: args.IfName}
	if k.ContainerID == "" || k.IfName == "" {
		log.Warn("DEL without a container ID or interface name: nothing to remove")
		return nil
	}
	if err := hooks.RemoveRecord(p.recordDir(conf), k); err != nil {
		log.Warn("cannot remove the attachment record", "err", err)
	}
	if err := p.daemon(conf).DeleteAttachment(context.Background(), k); err != nil {
		log.Warn("cannot tell nsproxy to remove the attachment", "err", err)
	}
	return nil
}

// Check verifies that the daemon has the attachment as ADD would register
// it now, that its namespace is available, that every TCP port mapping is
// exposed, and that its record exists (or the daemon would lose it on
// restart). Problems the daemon reports for other protocols (it proxies
// TCP only) do not fail CHECK.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "nsproxy-cni must be called as a chained plugin", "CHECK without prevResult")
	}
	want, err := p.attachment(conf, args)
	if err != nil {
		return err
	}
	got, err := p.daemon(conf).Attachment(context.Background(), want.AttachmentKey)
	switch {
	case hooks.IsNotFound(err):
		return types.NewError(CodeNotRegistered, "nsproxy has no attachment "+keyString(want.AttachmentKey),
			"ADD did not reach the daemon, or it was removed since; re-run ADD")
	case err != nil:
		return types.NewError(types.ErrTryAgainLater, "nsproxy daemon unavailable", err.Error())
	}
	if _, err := hooks.ReadRecord(p.recordDir(conf), want.AttachmentKey); err != nil {
		detail := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			detail = "no record in " + p.recordDir(conf) + ": the daemon would lose the attachment when it restarts"
		}
		return types.NewError(CodeNotRegistered, "nsproxy-cni has no record of attachment "+keyString(want.AttachmentKey), detail)
	}
	var bad []string
	if got.State != hooks.StateAvailable {
		bad = append(bad, fmt.Sprintf("namespace state %q, want %q", got.State, hooks.StateAvailable))
	}
	if got.Netns != want.Netns {
		bad = append(bad, fmt.Sprintf("registered netns %s, CNI_NETNS %s", got.Netns, want.Netns))
	}
	if !sameSet(got.IPs, want.IPs) {
		bad = append(bad, fmt.Sprintf("registered IPs %v, prevResult %v", got.IPs, want.IPs))
	}
	other := 0
	for _, pm := range got.PortMappings {
		if !isTCP(pm) {
			other++
		}
	}
	for _, pm := range want.PortMappings {
		if isTCP(pm) && !got.Exposes(pm) {
			bad = append(bad, fmt.Sprintf("TCP host port %d is not exposed", pm.HostPort))
		}
	}
	if len(got.Problems) > other || len(bad) > 0 && len(got.Problems) > 0 {
		bad = append(bad, got.Problems...)
	}
	if len(bad) > 0 {
		return types.NewError(CodeNotExposed, "nsproxy attachment "+keyString(want.AttachmentKey)+" is not as ADD left it", strings.Join(bad, "; "))
	}
	return nil
}

func isTCP(pm hooks.PortMapping) bool {
	return pm.Protocol == "" || strings.EqualFold(pm.Protocol, "tcp")
}

// sameSet compares addresses ignoring order and an optional /prefix.
func sameSet(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, 0, len(l))
		for _, s := range l {
			if ip, _, err := net.ParseCIDR(s); err == nil {
				s = ip.String()
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

func keyString(k hooks.AttachmentKey) string { return k.ContainerID + "/" + k.IfName }

// Status says whether ADD can be serviced (CNI 1.1): with strict, only
// when the daemon is ready; without, also when it is not, as ADD then
// succeeds with its record alone (the daemon replays it when it starts),
// as long as the record directory can be written. Otherwise error 50
// (plugin not available), and the runtime holds ADDs back: a runtime that
// asks STATUS (CRI-O, containerd) reports the node's network not ready,
// so a daemon restart must not stop every pod start on the node.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	rerr := p.daemon(conf).Ready(context.Background())
	if rerr == nil {
		return nil
	}
	if conf.Strict {
		return types.NewError(types.ErrPluginNotAvailable, "nsproxy daemon not available (strict)", rerr.Error())
	}
	dir := p.recordDir(conf)
	if err := recordDirWritable(dir); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "nsproxy daemon not available and attachments cannot be recorded",
			fmt.Sprintf("daemon: %v; record directory: %v", rerr, err))
	}
	p.log(args).Warn("nsproxy daemon not available; ADD records attachments for it to replay when it starts", "err", rerr, "records", dir)
	return nil
}

// recordDirWritable makes the record directory if needed and creates and
// removes a file in it, as a record's write does.
func recordDirWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".status-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// GC removes the attachments of this network and runtime that are not in
// the valid list: their records, and the daemon's attachments (source
// "cni", same network, same hooks.MetaRuntime as this call's). The valid
// list names only the calling runtime's containers, and two runtimes on one
// host (podman and containerd) may each have a network of the same name:
// another runtime's attachments, and those of a plugin older than
// MetaRuntime, whose runtime is unknown, are kept (DEL still removes them).
// Attachments of other networks and of the OCI hook are kept too, which is
// why it deletes one by one instead of using the daemon's global gc
// endpoint (that would also drop attachments registered between listing
// and collecting). Without either valid-attachments key, every attachment
// of the network and runtime is stale: libcni sends no list when its
// caller gives none (cnitool gc), meaning "collect everything".
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	runtime := p.runtime()
	log := p.log(nil).With("network", conf.Name, "runtime", runtime)
	valid, ok := conf.Valid()
	if !ok {
		log.Info("GC without cni.dev/valid-attachments: every attachment of the network is stale")
	}
	if runtime == "" {
		log.Warn("GC cannot tell which runtime calls it (no parent executable): it collects no attachments")
	}
	kept := map[hooks.AttachmentKey]string{} // stale, but another runtime's
	ours := func(a hooks.Attachment) bool {
		if a.Metadata[hooks.MetaNetwork] != conf.Name || valid[a.AttachmentKey] {
			return false
		}
		if r := a.Metadata[hooks.MetaRuntime]; r != runtime || r == "" {
			kept[a.AttachmentKey] = r
			return false
		}
		return true
	}
	dir := p.recordDir(conf)
	var errs []string
	records, bad := hooks.ListRecords(dir)
	for _, e := range bad {
		// Stale whatever the valid list says: its namespace is gone.
		if path, ok, err := hooks.RemoveEarlierBoot(e); ok {
			if err != nil {
				errs = append(errs, err.Error())
			} else {
				log.Info("attachment record of an earlier boot removed", "record", path)
			}
			continue
		}
		log.Warn("skipping a bad attachment record", "err", e)
	}
	for _, a := range records {
		if !ours(a) {
			continue
		}
		if err := hooks.RemoveRecord(dir, a.AttachmentKey); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		log.Info("stale attachment record removed", "container", a.ContainerID, "ifname", a.IfName)
	}
	d := p.daemon(conf)
	list, err := d.Attachments(context.Background())
	if err != nil {
		errs = append(errs, err.Error())
		logKept(log, kept)
		return types.NewError(types.ErrTryAgainLater, "nsproxy-cni: GC could not reach the daemon", strings.Join(errs, "; "))
	}
	for _, a := range list {
		if a.Source != hooks.SourceCNI || !ours(a) {
			continue
		}
		if err := d.DeleteAttachment(context.Background(), a.AttachmentKey); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		log.Info("stale attachment removed from nsproxy", "container", a.ContainerID, "ifname", a.IfName)
	}
	logKept(log, kept)
	if len(errs) > 0 {
		return types.NewError(types.ErrInternal, "nsproxy-cni: GC did not remove everything", strings.Join(errs, "; "))
	}
	return nil
}
