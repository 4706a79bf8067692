package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// cliUsage lists the commands that drive a running daemon over its control
// socket. It starts with a blank line so that it can follow the main usage.
const cliUsage = `
Control a running daemon (over --socket PATH; default $NSPROXY_SOCKET or ` + api.DefaultSocket + `):
  nsproxy get RESOURCE [NAME] [-o json|yaml|wide]  list objects; RESOURCE is namespaces (ns),
                                                   frontends (fe), backends (be), servers,
                                                   connections (conns), attachments or tenants
  nsproxy ns add NAME [--path P | --pid N]         register a network namespace
  nsproxy ns del NAME                              unregister a namespace
  nsproxy server add BACKEND NAME ADDR [flags]     add a server; flags: --namespace N|*, --check,
                                                   --inter D, --rise N, --fall N, --weight N,
                                                   --backup, --disabled, --send-proxy[-v2]
  nsproxy server del BACKEND NAME                  remove a server
  nsproxy stats [-o json|yaml]                     daemon-wide counters
Every control command also takes --timeout D (default 10s). --socket and --timeout
may also come before the command: nsproxy --socket PATH get fe.
`

// socketEnv overrides api.DefaultSocket as the default of --socket.
const socketEnv = "NSPROXY_SOCKET"

// noValue fills empty table cells, as kubectl does.
const noValue = "<none>"

// cliNow is the clock that connection ages are measured against; tests pin it.
var cliNow = time.Now

// cmdCLI runs a control command: args[0] is get, ns, server or stats.
func cmdCLI(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cliUsage)
		return 2
	}
	switch args[0] {
	case "get":
		return cliGet(args[1:], stdout, stderr)
	case "ns":
		return cliNamespace(args[1:], stdout, stderr)
	case "server":
		return cliServer(args[1:], stdout, stderr)
	case "stats":
		return cliStats(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "nsproxy: unknown control command %q\n\n%s", args[0], cliUsage)
	return 2
}

// cliCommand is the flag set and common flags of one control command.
type cliCommand struct {
	name           string // "ns add"
	usage          string // one line: "nsproxy ns add NAME [...]"
	stdout, stderr io.Writer
	fs             *flag.FlagSet
	socket         string
	timeout        time.Duration
}

func newCLICommand(name, usage string, stdout, stderr io.Writer) *cliCommand {
	c := &cliCommand{name: name, usage: usage, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors are printed by parse, with the usage line; -h prints to stdout.
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	socket := os.Getenv(socketEnv)
	if socket == "" {
		socket = api.DefaultSocket
	}
	c.fs.StringVar(&c.socket, "socket", socket, "control socket of the daemon ($"+socketEnv+")")
	c.fs.DurationVar(&c.timeout, "timeout", api.DefaultTimeout, "bound on each request to the daemon")
	return c
}

// parse parses flags that may come before, between or after positional
// arguments, and returns the positionals. ok is false when the command must
// stop with code.
func (c *cliCommand) parse(args []string) (pos []string, code int, ok bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.stdout, "usage: %s\n", c.usage)
				c.fs.SetOutput(c.stdout)
				c.fs.PrintDefaults()
				return nil, 0, false
			}
			return nil, c.usageError("%v", err), false
		}
		rest := c.fs.Args()
		// Parse stops after "--": what follows is positional, flags or not.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints a usage problem and returns exit code 2.
func (c *cliCommand) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "nsproxy %s: %s\nusage: %s\n", c.name, fmt.Sprintf(format, a...), c.usage)
	return 2
}

// fail prints an error, the daemon's text as it is, and returns exit code 1.
func (c *cliCommand) fail(err error) int {
	fmt.Fprintln(c.stderr, errorText(err))
	return 1
}

// errorText is err for a person: a daemon's answer is its message and one
// line per detail (a StatusError's Error is one line, for logs). A wrapped
// answer keeps its context on one line.
func errorText(err error) string {
	se, ok := err.(*api.StatusError)
	if !ok {
		return err.Error()
	}
	return strings.Join(append([]string{se.Text()}, se.Details...), "\n")
}

func (c *cliCommand) client() *api.Client {
	return api.NewClient(c.socket, api.WithTimeout(c.timeout))
}

// outputFlag adds -o and its long form --output.
func (c *cliCommand) outputFlag() *string {
	o := new(string)
	c.fs.StringVar(o, "o", "", "output format: json, yaml or wide")
	c.fs.StringVar(o, "output", "", "same as -o")
	return o
}

// checkOutput accepts the default table ("") and the allowed formats; when
// it refuses o, the command must exit with code.
func (c *cliCommand) checkOutput(o string, allowed ...string) (code int, ok bool) {
	if o == "" || slices.Contains(allowed, o) {
		return 0, true
	}
	return c.usageError("bad -o %q: use %s", o, strings.Join(allowed, ", ")), false
}

func cliGet(args []string, stdout, stderr io.Writer) int {
	c := newCLICommand("get", "nsproxy get namespaces|frontends|backends|servers|connections|attachments|tenants [NAME] [-o json|yaml|wide] [--socket PATH]", stdout, stderr)
	output := c.outputFlag()
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if code, ok := c.checkOutput(*output, "json", "yaml", "wide"); !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return c.usageError("missing RESOURCE")
	case len(pos) > 2:
		return c.usageError("too many arguments: %s", strings.Join(pos[2:], " "))
	}
	kind, found := resources[pos[0]]
	if !found {
		return c.usageError("unknown resource %q", pos[0])
	}
	var name string
	if len(pos) == 2 {
		name = pos[1]
	}
	client := c.client()
	res, err := kind.get(context.Background(), client, name, *output == "wide")
	if err != nil {
		return c.fail(err)
	}
	switch *output {
	case "json", "yaml":
		if err := printStructured(stdout, *output, res.value); err != nil {
			return c.fail(err)
		}
		return 0
	}
	if len(res.rows) == 0 {
		fmt.Fprintln(stderr, "No resources found.")
		return 0
	}
	printTable(stdout, res.header, res.rows)
	return 0
}

func cliNamespace(args []string, stdout, stderr io.Writer) int {
	const usage = "nsproxy ns add NAME [--path PATH | --pid PID] | nsproxy ns del NAME"
	if len(args) == 0 {
		fmt.Fprintf(stderr, "nsproxy ns: missing add or del\nusage: %s\n", usage)
		return 2
	}
	switch args[0] {
	case "add":
		c := newCLICommand("ns add", "nsproxy ns add NAME [--path PATH | --pid PID] [--socket PATH]", stdout, stderr)
		path := c.fs.String("path", "", "namespace file to register (a bind mount, /proc/PID/ns/net)")
		pid := c.fs.Int("pid", 0, "register the network namespace of this process")
		pos, code, ok := c.parse(args[1:])
		if !ok {
			return code
		}
		switch {
		case len(pos) != 1:
			return c.usageError("want one NAME, got %d arguments", len(pos))
		case *path != "" && *pid != 0:
			return c.usageError("give --path or --pid, not both")
		case *pid < 0:
			return c.usageError("bad --pid %d", *pid)
		}
		client := c.client()
		n, err := client.AddNamespace(context.Background(), api.Namespace{Name: pos[0], Path: *path, Pid: *pid})
		if err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "namespace/%s created\n", n.Name)
		return 0
	case "del", "delete", "rm":
		c := newCLICommand("ns del", "nsproxy ns del NAME [--socket PATH]", stdout, stderr)
		pos, code, ok := c.parse(args[1:])
		if !ok {
			return code
		}
		if len(pos) != 1 {
			return c.usageError("want one NAME, got %d arguments", len(pos))
		}
		client := c.client()
		if err := client.DeleteNamespace(context.Background(), pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "namespace/%s deleted\n", pos[0])
		return 0
	}
	fmt.Fprintf(stderr, "nsproxy ns: unknown subcommand %q\nusage: %s\n", args[0], usage)
	return 2
}

func cliServer(args []string, stdout, stderr io.Writer) int {
	const usage = "nsproxy server add BACKEND NAME ADDR [flags] | nsproxy server del BACKEND NAME"
	if len(args) == 0 {
		fmt.Fprintf(stderr, "nsproxy server: missing add or del\nusage: %s\n", usage)
		return 2
	}
	switch args[0] {
	case "add":
		c := newCLICommand("server add", "nsproxy server add BACKEND NAME ADDR [--namespace N|*] [--check] [--inter D] [--rise N] [--fall N] [--weight N] [--backup] [--disabled] [--send-proxy|--send-proxy-v2] [--socket PATH]", stdout, stderr)
		var s api.Server
		c.fs.StringVar(&s.Namespace, "namespace", "", `network namespace to connect in; "*" is the client's`)
		c.fs.BoolVar(&s.Check, "check", false, "health-check the server")
		c.fs.StringVar(&s.Inter, "inter", "", "interval between checks (30s, 500ms)")
		c.fs.IntVar(&s.Rise, "rise", 0, "successful checks to mark the server up")
		c.fs.IntVar(&s.Fall, "fall", 0, "failed checks to mark the server down")
		weight := c.fs.Int("weight", 0, "load-balancing weight (default: the daemon's)")
		c.fs.BoolVar(&s.Backup, "backup", false, "use only when no other server is up")
		c.fs.BoolVar(&s.Disabled, "disabled", false, "add the server in maintenance")
		v1 := c.fs.Bool("send-proxy", false, "send a PROXY v1 header")
		v2 := c.fs.Bool("send-proxy-v2", false, "send a PROXY v2 header")
		pos, code, ok := c.parse(args[1:])
		if !ok {
			return code
		}
		switch {
		case len(pos) != 3:
			return c.usageError("want BACKEND NAME ADDR, got %d arguments", len(pos))
		case *v1 && *v2:
			return c.usageError("give --send-proxy or --send-proxy-v2, not both")
		}
		s.Backend, s.Name, s.Addr = pos[0], pos[1], pos[2]
		c.fs.Visit(func(f *flag.Flag) {
			// Unset and 0 differ: the daemon applies its default only to an absent weight.
			if f.Name == "weight" {
				s.Weight = weight
			}
		})
		switch {
		case *v1:
			s.SendProxy = 1
		case *v2:
			s.SendProxy = 2
		}
		client := c.client()
		got, err := client.AddServer(context.Background(), s)
		if err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "server/%s/%s created\n", got.Backend, got.Name)
		return 0
	case "del", "delete", "rm":
		c := newCLICommand("server del", "nsproxy server del BACKEND NAME [--socket PATH]", stdout, stderr)
		pos, code, ok := c.parse(args[1:])
		if !ok {
			return code
		}
		if len(pos) != 2 {
			return c.usageError("want BACKEND NAME, got %d arguments", len(pos))
		}
		client := c.client()
		if err := client.DeleteServer(context.Background(), pos[0], pos[1]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "server/%s/%s deleted\n", pos[0], pos[1])
		return 0
	}
	fmt.Fprintf(stderr, "nsproxy server: unknown subcommand %q\nusage: %s\n", args[0], usage)
	return 2
}

func cliStats(args []string, stdout, stderr io.Writer) int {
	c := newCLICommand("stats", "nsproxy stats [-o json|yaml] [--socket PATH]", stdout, stderr)
	output := c.outputFlag()
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if code, ok := c.checkOutput(*output, "json", "yaml"); !ok {
		return code
	}
	if len(pos) != 0 {
		return c.usageError("unexpected arguments: %s", strings.Join(pos, " "))
	}
	client := c.client()
	s, err := client.Stats(context.Background())
	if err != nil {
		return c.fail(err)
	}
	if *output != "" {
		if err := printStructured(stdout, *output, s); err != nil {
			return c.fail(err)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"Uptime", s.Uptime},
		{"Namespaces", strconv.Itoa(s.Namespaces)},
		{"Frontends", strconv.Itoa(s.Frontends)},
		{"Backends", strconv.Itoa(s.Backends)},
		{"Servers", serverCounts(s)},
		{"Connections", strconv.Itoa(s.Connections)},
		{"Total", strconv.FormatUint(s.Total, 10)},
		{"Bytes in", strconv.FormatUint(s.BytesIn, 10)},
		{"Bytes out", strconv.FormatUint(s.BytesOut, 10)},
		{"Attachments", strconv.Itoa(s.Attachments)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], tableCell(kv[1]))
	}
	_ = tw.Flush()
	return 0
}

// getResult is what a get fetched: value for -o json|yaml (one object, or a
// list that is never null), header and rows for the table.
type getResult struct {
	value  any
	header []string
	rows   [][]string
}

// resourceKind fetches one kind of object for get; name is empty for all.
type resourceKind interface {
	get(ctx context.Context, c *api.Client, name string, wide bool) (getResult, error)
}

// tableColumn is one table column of objectKind T; wide columns show only
// with -o wide.
type tableColumn[T any] struct {
	header string
	wide   bool
	value  func(T) string
}

// objectKind describes how to list, find and print objects of type T. The client
// comes first so that method expressions such as (*api.Client).Namespaces fit.
type objectKind[T any] struct {
	list func(*api.Client, context.Context) ([]T, error)
	// find looks name up; single says name addresses one object, so -o
	// json|yaml prints the object rather than a list.
	find    func(c *api.Client, ctx context.Context, name string) (items []T, single bool, err error)
	columns []tableColumn[T]
}

func (k objectKind[T]) get(ctx context.Context, c *api.Client, name string, wide bool) (getResult, error) {
	var (
		items  []T
		single bool
		err    error
	)
	if name == "" {
		items, err = k.list(c, ctx)
	} else {
		items, single, err = k.find(c, ctx, name)
	}
	if err != nil {
		return getResult{}, err
	}
	var res getResult
	switch {
	case single && len(items) == 1:
		res.value = items[0]
	case items == nil:
		res.value = []T{}
	default:
		res.value = items
	}
	var cols []tableColumn[T]
	for _, col := range k.columns {
		if wide || !col.wide {
			cols = append(cols, col)
			res.header = append(res.header, col.header)
		}
	}
	for _, it := range items {
		row := make([]string, len(cols))
		for i, col := range cols {
			row[i] = tableCell(col.value(it))
		}
		res.rows = append(res.rows, row)
	}
	return res, nil
}

// byName adapts a get-one-object call to objectKind.find.
func byName[T any](get func(*api.Client, context.Context, string) (T, error)) func(*api.Client, context.Context, string) ([]T, bool, error) {
	return func(c *api.Client, ctx context.Context, name string) ([]T, bool, error) {
		v, err := get(c, ctx, name)
		if err != nil {
			return nil, false, err
		}
		return []T{v}, true, nil
	}
}

// resources maps get's RESOURCE argument, with its aliases, to an objectKind.
var resources = func() map[string]resourceKind {
	m := map[string]resourceKind{}
	for _, r := range []struct {
		names []string
		kind  resourceKind
	}{
		{[]string{"namespaces", "namespace", "ns"}, namespaceKind},
		{[]string{"frontends", "frontend", "fe"}, frontendKind},
		{[]string{"backends", "backend", "be"}, backendKind},
		{[]string{"servers", "server"}, serverKind},
		{[]string{"connections", "connection", "conns", "conn"}, connectionKind},
		{[]string{"attachments", "attachment"}, attachmentKind},
		{[]string{"tenants", "tenant"}, tenantKind},
	} {
		for _, n := range r.names {
			m[n] = r.kind
		}
	}
	return m
}()

var namespaceKind = objectKind[api.Namespace]{
	list: (*api.Client).Namespaces,
	find: byName((*api.Client).Namespace),
	columns: []tableColumn[api.Namespace]{
		{header: "NAMESPACE", value: func(n api.Namespace) string { return n.Name }},
		{header: "SOURCE", value: func(n api.Namespace) string { return n.Source }},
		{header: "TENANT", value: func(n api.Namespace) string { return n.Tenant }},
		{header: "STATE", value: func(n api.Namespace) string { return n.State }},
		{header: "ALLOWED", value: func(n api.Namespace) string { return strconv.FormatBool(n.Allowed) }},
		{header: "USED-BY", value: func(n api.Namespace) string { return strings.Join(n.UsedBy, ",") }},
		{header: "PATH", wide: true, value: func(n api.Namespace) string { return n.Path }},
		{header: "IDENTITY", wide: true, value: func(n api.Namespace) string { return identityText(n.Identity) }},
		{header: "METADATA", wide: true, value: func(n api.Namespace) string { return keyValues(n.Metadata) }},
	},
}

var frontendKind = objectKind[api.Frontend]{
	list: (*api.Client).Frontends,
	find: byName((*api.Client).Frontend),
	columns: []tableColumn[api.Frontend]{
		{header: "NAME", value: func(f api.Frontend) string { return f.Name }},
		{header: "SOURCE", value: func(f api.Frontend) string { return f.Source }},
		{header: "BACKEND", value: func(f api.Frontend) string { return f.Backend }},
		{header: "BINDS", value: bindList},
		{header: "LISTENING", value: listeningCount},
		{header: "CURRENT", value: func(f api.Frontend) string { return strconv.FormatInt(f.Current, 10) }},
		{header: "TOTAL", value: func(f api.Frontend) string { return strconv.FormatUint(f.Total, 10) }},
		{header: "IN", wide: true, value: func(f api.Frontend) string { return strconv.FormatUint(f.BytesIn, 10) }},
		{header: "OUT", wide: true, value: func(f api.Frontend) string { return strconv.FormatUint(f.BytesOut, 10) }},
		{header: "MAXCONN", wide: true, value: func(f api.Frontend) string { return positiveText(f.MaxConn) }},
		{header: "CLIENT-TIMEOUT", wide: true, value: func(f api.Frontend) string { return f.ClientTimeout }},
		{header: "ERRORS", wide: true, value: listenErrors},
	},
}

var backendKind = objectKind[api.Backend]{
	list: (*api.Client).Backends,
	find: byName((*api.Client).Backend),
	columns: []tableColumn[api.Backend]{
		{header: "NAME", value: func(b api.Backend) string { return b.Name }},
		{header: "SOURCE", value: func(b api.Backend) string { return b.Source }},
		{header: "BALANCE", value: func(b api.Backend) string { return b.Balance }},
		{header: "SERVERS", value: func(b api.Backend) string { return strconv.Itoa(len(b.Servers)) }},
		{header: "UP", value: func(b api.Backend) string {
			up := 0
			for _, s := range b.Servers {
				if s.Up {
					up++
				}
			}
			return strconv.Itoa(up)
		}},
		{header: "CONNECT-TIMEOUT", wide: true, value: func(b api.Backend) string { return b.ConnectTimeout }},
		{header: "SERVER-TIMEOUT", wide: true, value: func(b api.Backend) string { return b.ServerTimeout }},
	},
}

var serverKind = objectKind[api.Server]{
	list: (*api.Client).Servers,
	find: findServers,
	columns: []tableColumn[api.Server]{
		{header: "BACKEND", value: func(s api.Server) string { return s.Backend }},
		{header: "NAME", value: func(s api.Server) string { return s.Name }},
		{header: "ADDR", value: func(s api.Server) string { return s.Addr }},
		{header: "NAMESPACE", value: func(s api.Server) string { return s.Namespace }},
		{header: "UP", value: func(s api.Server) string { return strconv.FormatBool(s.Up) }},
		{header: "DOWN-REASON", value: func(s api.Server) string { return s.DownReason }},
		{header: "ACTIVE", value: func(s api.Server) string { return strconv.FormatInt(s.Active, 10) }},
		{header: "TOTAL", value: func(s api.Server) string { return strconv.FormatUint(s.Total, 10) }},
		{header: "SOURCE", wide: true, value: func(s api.Server) string { return s.Source }},
		{header: "CHECK", wide: true, value: checkSummary},
		{header: "WEIGHT", wide: true, value: func(s api.Server) string {
			if s.Weight == nil {
				return "<default>"
			}
			return strconv.Itoa(*s.Weight)
		}},
		{header: "OPTIONS", wide: true, value: serverOptions},
		{header: "CONNECT-ERRORS", wide: true, value: func(s api.Server) string { return strconv.FormatUint(s.ConnectErrors, 10) }},
	},
}

// findServers takes BACKEND (its servers) or BACKEND/NAME (one server).
func findServers(c *api.Client, ctx context.Context, name string) ([]api.Server, bool, error) {
	backend, server, single := strings.Cut(name, "/")
	all, err := c.Servers(ctx)
	if err != nil {
		return nil, false, err
	}
	var found []api.Server
	for _, s := range all {
		if s.Backend == backend && (!single || s.Name == server) {
			found = append(found, s)
		}
	}
	if len(found) > 0 {
		return found, single, nil
	}
	// Nothing matched: let the daemon say whether the backend exists.
	if _, err := c.Backend(ctx, backend); err != nil {
		return nil, false, err
	}
	if single {
		return nil, false, fmt.Errorf("server %q not found in backend %q", server, backend)
	}
	return nil, false, nil
}

var connectionKind = objectKind[api.Connection]{
	list: (*api.Client).Connections,
	find: findConnection,
	columns: []tableColumn[api.Connection]{
		{header: "ID", value: func(c api.Connection) string { return strconv.FormatUint(c.ID, 10) }},
		{header: "FRONTEND", value: func(c api.Connection) string { return c.Frontend }},
		{header: "BACKEND", value: func(c api.Connection) string { return c.Backend }},
		{header: "SERVER", value: func(c api.Connection) string { return c.Server }},
		{header: "CLIENT", value: func(c api.Connection) string { return c.Client }},
		{header: "CLIENT-NETNS", value: func(c api.Connection) string { return c.ClientNetns }},
		{header: "SERVER-NETNS", value: func(c api.Connection) string { return c.ServerNetns }},
		{header: "AGE", value: func(c api.Connection) string {
			if c.Start.IsZero() {
				return "<unknown>"
			}
			return humanAge(cliNow().Sub(c.Start))
		}},
		{header: "IN", value: func(c api.Connection) string { return strconv.FormatUint(c.BytesIn, 10) }},
		{header: "OUT", value: func(c api.Connection) string { return strconv.FormatUint(c.BytesOut, 10) }},
		{header: "START", wide: true, value: func(c api.Connection) string {
			if c.Start.IsZero() {
				return ""
			}
			return c.Start.Format(time.RFC3339)
		}},
	},
}

// findConnection takes a connection ID.
func findConnection(c *api.Client, ctx context.Context, name string) ([]api.Connection, bool, error) {
	id, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		return nil, false, fmt.Errorf("bad connection ID %q: want a number", name)
	}
	all, err := c.Connections(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, conn := range all {
		if conn.ID == id {
			return []api.Connection{conn}, true, nil
		}
	}
	return nil, false, fmt.Errorf("connection %d not found", id)
}

var attachmentKind = objectKind[api.Attachment]{
	list: (*api.Client).Attachments,
	find: findAttachments,
	columns: []tableColumn[api.Attachment]{
		{header: "CONTAINER-ID", value: func(a api.Attachment) string { return shortID(a.ContainerID) }},
		{header: "IFNAME", value: func(a api.Attachment) string { return a.IfName }},
		{header: "NAMESPACE", value: func(a api.Attachment) string { return a.Name }},
		{header: "SOURCE", value: func(a api.Attachment) string { return a.Source }},
		{header: "STATE", value: func(a api.Attachment) string { return a.State }},
		{header: "IPS", value: func(a api.Attachment) string { return strings.Join(a.IPs, ",") }},
		{header: "PORTS", value: portList},
		{header: "EXPOSED", value: func(a api.Attachment) string { return strings.Join(a.Exposed, ",") }},
		{header: "FULL-ID", wide: true, value: func(a api.Attachment) string { return a.ContainerID }},
		{header: "NETNS", wide: true, value: func(a api.Attachment) string { return a.Netns }},
		{header: "TENANT", wide: true, value: func(a api.Attachment) string { return a.Tenant }},
		{header: "PROBLEMS", wide: true, value: func(a api.Attachment) string { return strings.Join(a.Problems, "; ") }},
		{header: "METADATA", wide: true, value: func(a api.Attachment) string { return keyValues(a.Metadata) }},
	},
}

// findAttachments takes CONTAINER-ID/IFNAME (one attachment) or a prefix of
// a container ID (its attachments), as docker takes short IDs.
func findAttachments(c *api.Client, ctx context.Context, name string) ([]api.Attachment, bool, error) {
	if id, ifname, ok := strings.Cut(name, "/"); ok {
		a, err := c.Attachment(ctx, api.AttachmentKey{ContainerID: id, IfName: ifname})
		if err != nil {
			return nil, false, err
		}
		return []api.Attachment{a}, true, nil
	}
	all, err := c.Attachments(ctx)
	if err != nil {
		return nil, false, err
	}
	var found []api.Attachment
	for _, a := range all {
		if strings.HasPrefix(a.ContainerID, name) {
			found = append(found, a)
		}
	}
	if len(found) == 0 {
		return nil, false, fmt.Errorf("no attachment of container %q", name)
	}
	return found, false, nil
}

var tenantKind = objectKind[api.Tenant]{
	list: (*api.Client).Tenants,
	find: byName((*api.Client).Tenant),
	columns: []tableColumn[api.Tenant]{
		{header: "TENANT", value: func(t api.Tenant) string { return t.Name }},
		{header: "SOURCE", value: func(t api.Tenant) string { return t.Source }},
		{header: "NAMESPACES", value: func(t api.Tenant) string {
			names := make([]string, len(t.Namespaces))
			for i, n := range t.Namespaces {
				names[i] = n.Name
			}
			return strings.Join(names, ",")
		}},
		{header: "FRONTENDS", value: func(t api.Tenant) string { return strings.Join(t.Frontends, ",") }},
		{header: "EXPOSURES", value: func(t api.Tenant) string { return strings.Join(t.Exposures, ",") }},
		{header: "REFUSED", value: func(t api.Tenant) string {
			var n uint64
			for _, x := range t.Refusals {
				n += x
			}
			return strconv.FormatUint(n, 10)
		}},
		// A container several tenants' selectors claim: its namespace and
		// the tenants, e.g. cni-web-1(ta+tb).
		{header: "OVERLAPS", value: func(t api.Tenant) string {
			l := make([]string, len(t.Overlaps))
			for i, o := range t.Overlaps {
				l[i] = o.Namespace + "(" + strings.Join(o.Tenants, "+") + ")"
			}
			return strings.Join(l, ",")
		}},
		{header: "SERVICES", wide: true, value: func(t api.Tenant) string { return strings.Join(t.Services, ",") }},
		{header: "REFUSALS", wide: true, value: func(t api.Tenant) string {
			m := map[string]string{}
			for k, v := range t.Refusals {
				m[k] = strconv.FormatUint(v, 10)
			}
			return keyValues(m)
		}},
		{header: "OWNER", wide: true, value: func(t api.Tenant) string { return t.Owner }},
	},
}

// printTable aligns columns as kubectl does.
func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// printStructured prints v as indented JSON or as YAML whose keys are the
// JSON names.
func printStructured(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "json" {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	// A round trip through JSON makes the YAML follow the json tags
	// (omitempty, camelCase) instead of yaml.v3's lower-cased field names.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(plainNumbers(generic)); err != nil {
		return err
	}
	return enc.Close()
}

// plainNumbers turns json.Numbers into integers (floats when they are not),
// so YAML prints them unquoted and uint64 counters keep every digit.
func plainNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = plainNumbers(e)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return u
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	}
	return v
}

// tableCell makes a value fit a table cell: tabs and newlines would break the
// alignment, and an empty cell reads as a missing column.
func tableCell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return noValue
	}
	return s
}

func positiveText(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func identityText(id *api.Identity) string {
	if id == nil {
		return ""
	}
	s := fmt.Sprintf("dev=%d,ino=%d", id.Dev, id.Ino)
	if id.Cookie != 0 {
		s += fmt.Sprintf(",cookie=%d", id.Cookie)
	}
	return s
}

// keyValues prints a map as k=v pairs in key order.
func keyValues(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// bindList prints each bind as ADDR, or ADDR@NAMESPACE; "/v4v6" and
// "/v6only" mark the family keywords of a :: bind.
func bindList(f api.Frontend) string {
	var parts []string
	for _, b := range f.Binds {
		s := b.Addr
		if b.V4V6 {
			s += "/v4v6"
		}
		if b.V6Only {
			s += "/v6only"
		}
		if b.Namespace != "" {
			s += "@" + b.Namespace
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// listeningCount prints how many of the binds listen: 2/2.
func listeningCount(f api.Frontend) string {
	n, of := 0, len(f.Listeners)
	for _, l := range f.Listeners {
		if l.Listening {
			n++
		}
	}
	if of == 0 {
		of = len(f.Binds)
	}
	return fmt.Sprintf("%d/%d", n, of)
}

func listenErrors(f api.Frontend) string {
	var parts []string
	for _, l := range f.Listeners {
		if l.Error != "" {
			parts = append(parts, l.Addr+": "+l.Error)
		}
	}
	return strings.Join(parts, "; ")
}

// serverCounts is the stats line of servers: "9 (6 up)", and why the
// others are down: "9 (6 up; down: 2 check_failed, 1 disabled)".
func serverCounts(s api.Stats) string {
	out := fmt.Sprintf("%d (%d up", s.Servers, s.ServersUp)
	reasons := slices.Sorted(maps.Keys(s.ServersDown))
	for i, r := range reasons {
		sep := ", "
		if i == 0 {
			sep = "; down: "
		}
		n := s.ServersDown[r]
		if r == "" {
			r = "unknown"
		}
		out += sep + strconv.Itoa(n) + " " + r
	}
	return out + ")"
}

func checkSummary(s api.Server) string {
	if !s.Check {
		return ""
	}
	parts := []string{"on"}
	if s.Inter != "" {
		parts = append(parts, "inter="+s.Inter)
	}
	if s.Rise != 0 {
		parts = append(parts, "rise="+strconv.Itoa(s.Rise))
	}
	if s.Fall != 0 {
		parts = append(parts, "fall="+strconv.Itoa(s.Fall))
	}
	return strings.Join(parts, ",")
}

func serverOptions(s api.Server) string {
	var opts []string
	if s.Backup {
		opts = append(opts, "backup")
	}
	if s.Disabled {
		opts = append(opts, "disabled")
	}
	switch s.SendProxy {
	case 1:
		opts = append(opts, "send-proxy")
	case 2:
		opts = append(opts, "send-proxy-v2")
	}
	return strings.Join(opts, ",")
}

// portList prints port mappings as docker does: [HOSTIP:]HOSTPORT->PORT/PROTO.
func portList(a api.Attachment) string {
	var parts []string
	for _, p := range a.PortMappings {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		s := fmt.Sprintf("%d->%d/%s", p.HostPort, p.ContainerPort, proto)
		if p.HostIP != "" {
			s = p.HostIP + ":" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// shortID cuts a container ID to docker's 12 characters.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// humanAge prints a duration the way kubectl's AGE column does: precise
// when short, coarse when long.
func humanAge(d time.Duration) string {
	s := int64(d / time.Second)
	m, h := s/60, s/3600
	days := h / 24
	switch {
	case s < 0:
		return "0s"
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case m < 10:
		return fmt.Sprintf("%dm%ds", m, s%60)
	case h < 3:
		return fmt.Sprintf("%dm", m)
	case h < 8:
		return fmt.Sprintf("%dh%dm", h, m%60)
	case h < 48:
		return fmt.Sprintf("%dh", h)
	case days < 8:
		return fmt.Sprintf("%dd%dh", days, h%24)
	}
	return fmt.Sprintf("%dd", days)
}
