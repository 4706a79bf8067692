// Command nsproxy is the namespace-aware TCP proxy daemon and its CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/metrics"
	"github.com/nsproxy/nsproxy/sidecar/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `nsproxy: a namespace-aware TCP proxy

Usage:
  nsproxy run [-f FILE ...] [flags]           run the daemon (without -f: objects from the API and CNI only)
  nsproxy upgrade [--binary PATH]             hand every listener to a new daemon binary, without downtime
  nsproxy validate -f FILE [-f FILE ...]      check configuration files, list every problem
  nsproxy version                             print the version
  nsproxy hook oci [createRuntime|poststop]   OCI hook: container state on stdin (see manifests/)

Signals (run): SIGHUP reloads the files (a bad configuration keeps the old one
running), SIGTERM/SIGINT drain connections and stop. With $NOTIFY_SOCKET set
(systemd Type=notify) it sends READY=1, RELOADING=1, STOPPING=1 and, when
$WATCHDOG_USEC is set, WATCHDOG=1 every half period.
`

// files collects repeated -f flags.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	args, err := hoistGlobalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "nsproxy: %v\n", err)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "upgrade":
		return cmdUpgrade(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "get", "ns", "server", "stats":
		return cmdCLI(args, stdout, stderr)
	case "apply", "delete", "diff":
		return cliManifests(args[0], args[1:], stdout, stderr)
	case "hook":
		return cmdHook(args[1:], os.Stdin, stdout, stderr)
	case "install-cni":
		return cmdInstallCNI(args[1:], stdout, stderr)
	case "uninstall-cni":
		return cmdUninstallCNI(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "nsproxy", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage+cliUsage+manifestUsage+installCNIUsage+upgradeUsage)
		return 0
	}
	fmt.Fprintf(stderr, "nsproxy: unknown command %q\n\n%s%s%s%s", args[0], usage, cliUsage, manifestUsage, installCNIUsage)
	return 2
}

// globalFlags may come before the command, as in kubectl and podman; each
// takes a value. The commands listed are those that define the flag.
var globalFlags = map[string][]string{
	"socket":  {"get", "ns", "server", "stats", "run", "hook", "apply", "delete", "diff", "upgrade"},
	"timeout": {"get", "ns", "server", "stats", "apply", "delete", "diff", "upgrade"},
}

// hoistGlobalFlags moves global flags given before the command to the end
// of the command's own arguments (before a "--", which ends the flags), so
// that the command's flag set parses them like flags given after it.
func hoistGlobalFlags(args []string) ([]string, error) {
	var global []string
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-") && len(args[i]) > 1; i++ {
		switch args[i] {
		case "-h", "-help", "--help", "--version":
			if i == 0 {
				return args, nil // a command of its own
			}
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if _, ok := globalFlags[name]; !ok || strings.HasPrefix(args[i], "---") {
			return nil, fmt.Errorf("unknown global flag %q; global flags: --socket PATH, --timeout D", args[i])
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			value = args[i]
		}
		global = append(global, "--"+name+"="+value)
	}
	if len(global) == 0 {
		return args, nil
	}
	if i == len(args) {
		return nil, errors.New("missing command after the global flags")
	}
	cmd := args[i]
	for _, g := range global {
		name, _, _ := strings.Cut(strings.TrimPrefix(g, "--"), "=")
		if !slices.Contains(globalFlags[name], cmd) {
			return nil, fmt.Errorf("--%s is not a flag of %s", name, cmd)
		}
	}
	rest := slices.Clone(args[i:])
	at := len(rest)
	if j := slices.Index(rest, "--"); j >= 0 {
		at = j
	}
	return slices.Insert(rest, at, global...), nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f files
	fs.Var(&f, "f", "configuration file (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// Not read, a file named here would pass unchecked.
		fmt.Fprintf(stderr, "nsproxy validate: unexpected argument %q (give each configuration file with its own -f)\n", fs.Arg(0))
		return 2
	}
	if len(f) == 0 {
		fmt.Fprintln(stderr, "nsproxy validate: give at least one -f FILE")
		return 2
	}
	cfg, err := config.Load(f...)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "configuration valid: %d frontends, %d backends, %d namespaces\n",
		len(cfg.Frontends), len(cfg.Backends), len(cfg.NamespaceNames()))
	return 0
}

// printErrors prints each joined error on its own line.
func printErrors(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printErrors(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f files
	fs.Var(&f, "f", "configuration file (repeatable)")
	netnsDir := fs.String("netns-dir", "/var/run/netns", "directory of named network namespaces")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long SIGTERM lets connections finish")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	socket := fs.String("socket", api.DefaultSocket, "control socket (\"\" or \"none\" disables it)")
	socketGroup := fs.String("socket-group", "", "group (name or id) that may also use the control socket")
	tenantAccess := fs.Bool("tenant-access", false, "let the users and groups of each tenant's spec.access use the control socket for that tenant only (the socket becomes mode 0666; every request is checked by SO_PEERCRED)")
	manifestDir := fs.String("manifests", "", "directory of tenant manifests (*.yaml, *.yml) to apply and keep applied: reloaded on change and on SIGHUP; its documents are read-only through the API")
	stateFile := fs.String("state-file", "/var/lib/nsproxy/state.json", "where run-time objects persist (\"\" or \"none\": not at all)")
	attachmentDir := fs.String("attachment-dir", hooks.RecordDir, "attachment records of the CNI plugin, replayed at start (\"none\": off)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this TCP address, e.g. 127.0.0.1:9101 (off by default)")
	takeover := fs.Bool("takeover", false, "take over every listening socket of the daemon running on --socket, then tell it to drain and exit (zero-downtime upgrade); without one running, start normally")
	afterHandover := fs.String("after-handover", "exit", "once a successor took over and the connections drained: exit, or wait for SIGTERM (for supervisors that restart an exited process, e.g. a Kubernetes container)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *afterHandover != "exit" && *afterHandover != "wait" {
		fmt.Fprintf(stderr, "nsproxy run: bad --after-handover %q: use exit or wait\n", *afterHandover)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nsproxy run: unexpected argument %q (configuration files go after -f)\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy run:", err)
		return 2
	}
	group := -1
	if *socketGroup != "" {
		g, err := lookupGroup(*socketGroup)
		if err != nil {
			fmt.Fprintln(stderr, "nsproxy run:", err)
			return 2
		}
		group = g
	}
	if *stateFile == "none" {
		*stateFile = ""
	}
	if *attachmentDir == "none" {
		*attachmentDir = ""
	}
	notifier, err := sdnotify.FromEnv()
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy run:", err)
		return 2
	}
	var m *metrics.Metrics
	var d *sidecar.Daemon
	opt := sidecar.Options{ConfigFiles: f, NetnsDir: *netnsDir, DrainTimeout: *drain, StateFile: *stateFile,
		AttachmentDir: *attachmentDir, Logger: log, Notifier: notifier, Successor: successorOptions(args),
		ManifestDir: *manifestDir}
	if *metricsAddr != "" {
		opt.OnReconcile = func(dur time.Duration, err error) {
			if m != nil {
				m.ObserveReconcile(dur, err)
			}
		}
	}
	// Signals first: a SIGHUP while the files load must not kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// After the first SIGTERM/SIGINT, the default action is back: a second
	// one ends the process at once instead of waiting for the drain.
	context.AfterFunc(ctx, stop)
	var tk *sidecar.Takeover
	if *takeover && *socket != "" && *socket != "none" {
		if tk, err = beginTakeover(ctx, *socket, log); err != nil {
			fmt.Fprintln(stderr, "nsproxy run:", err)
			return 1
		}
		if tk != nil {
			opt.Inherited, opt.TakingOver = tk.Inherited, true
		}
	}
	d, err = sidecar.New(opt)
	if err != nil {
		tk.Abort()
		printErrors(stderr, err)
		return 1
	}
	// Every listener that can fail is opened before a takeover commits: once
	// it has, the old daemon no longer accepts, and a successor that gave
	// up then would leave every frontend refused.
	var metricsLn, controlLn net.Listener
	if tk != nil {
		metricsLn = tk.Listener(sidecar.RoleMetrics)
		if metricsLn != nil && !sameListenAddr(metricsLn.Addr(), *metricsAddr) {
			// The new flags move (or drop) the metrics port: bind afresh.
			metricsLn.Close()
			metricsLn = nil
		}
	}
	if *metricsAddr != "" && metricsLn == nil {
		if metricsLn, err = metrics.Listen(*metricsAddr); err != nil {
			tk.Abort()
			fmt.Fprintln(stderr, "nsproxy run:", err)
			return 1
		}
	}
	serveControl := *socket != "" && *socket != "none"
	if serveControl && tk != nil {
		controlLn = tk.Listener(sidecar.RoleControl)
	}
	// A running daemon that did not hand its control socket over holds the
	// path until the commit: bind it after.
	if serveControl && controlLn == nil && tk == nil {
		if controlLn, err = sidecar.ListenControl(sidecar.ControlOptions{Socket: *socket, Group: group, TenantAccess: *tenantAccess}); err != nil {
			if metricsLn != nil {
				metricsLn.Close()
			}
			fmt.Fprintln(stderr, "nsproxy run:", err)
			return 1
		}
	}
	if tk != nil {
		if err := finishTakeover(d, tk, notifier, log); err != nil {
			if metricsLn != nil {
				metricsLn.Close()
			}
			if ul, ok := controlLn.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false) // the path is the old daemon's
				ul.Close()
			}
			fmt.Fprintln(stderr, "nsproxy run:", err)
			return 1
		}
	}

	var bg sync.WaitGroup
	defer bg.Wait()
	if metricsLn != nil {
		ln := metricsLn
		m = metrics.New(metrics.Source{Snapshot: d.Engine().Snapshot,
			RegistrySize: d.Registry().Count, Attachments: d.AttachmentCount})
		d.ShareListener(sidecar.RoleMetrics, ln)
		log.Info("metrics listening", "addr", ln.Addr().String())
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := m.Serve(ctx, ln); err != nil && !isClosed(d.HandedOver()) {
				log.Error("metrics server stopped", "err", err.Error())
			}
		}()
	}
	if serveControl {
		ln := controlLn
		if ln == nil {
			if ln, err = sidecar.ListenControl(sidecar.ControlOptions{Socket: *socket, Group: group, TenantAccess: *tenantAccess}); err != nil {
				fmt.Fprintln(stderr, "nsproxy run:", err)
				return 1
			}
		}
		d.ShareListener(sidecar.RoleControl, ln)
		log.Info("control socket listening", "socket", *socket)
		bg.Add(1)
		go func() {
			defer bg.Done()
			defer func() {
				// Once the sockets were offered, the path is the successor's.
				if !d.ControlSocketGivenAway() {
					os.Remove(*socket)
				}
			}()
			if err := d.ServeControl(ctx, ln, group); err != nil {
				log.Error("control socket stopped", "err", err.Error())
			}
		}()
	}
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if every, err := sdnotify.WatchdogInterval(); err != nil {
		log.Warn("systemd watchdog off", "err", err.Error())
	} else if every > 0 {
		stopWD := make(chan struct{})
		defer close(stopWD)
		go notifier.RunWatchdog(stopWD, every)
	}
	if err := d.Run(ctx, reload); err != nil {
		stop()
		printErrors(stderr, err)
		return 1
	}
	if isClosed(d.HandedOver()) && *afterHandover == "wait" {
		log.Info("handed over and drained; waiting for SIGTERM (--after-handover=wait)")
		<-ctx.Done()
	}
	return 0
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("--socket-group %q: %w", g, err)
	}
	return strconv.Atoi(grp.Gid)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q: use debug, info, warn or error", level)
	}
	opt := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opt)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opt)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q: use text or json", format)
}

// sameListenAddr reports whether a listening socket's address is the one a
// --metrics-addr flag asks for ("HOST:PORT"; an empty host is any address).
func sameListenAddr(a net.Addr, flag string) bool {
	host, port, err := net.SplitHostPort(flag)
	if flag == "" || err != nil {
		return false
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok || strconv.Itoa(ta.Port) != port {
		return false
	}
	if host == "" {
		return ta.IP.IsUnspecified()
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ta.AddrPort().Addr().Unmap() == ip.Unmap()
}
