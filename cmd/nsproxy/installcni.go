package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsproxy/nsproxy/cniconf"
)

// install-cni and uninstall-cni: flags and reports; package cniconf does
// the work and documents what it promises.

// installCNIUsage lists both commands; it starts with a blank line so that
// it can follow the main usage.
const installCNIUsage = `
Chain the nsproxy-cni plugin into CNI network configuration lists:
  nsproxy install-cni [--conflist FILE | --all] [--dir DIR] [--plugin-config JSON]
                      [--replace-portmap] [--plugin-binary FILE --bin-dir DIR]
                      [--cni-bin-dir DIR[:DIR...]] [--dry-run]
  nsproxy uninstall-cni [--conflist FILE | --all] [--dir DIR] [--dry-run]
`

// cniCommand holds the flags both commands share.
type cniCommand struct {
	name     string
	fs       *flag.FlagSet
	conflist *string
	all      *bool
	dir      *string
	dryRun   *bool
	stdout   io.Writer
	stderr   io.Writer
}

func newCNICommand(name, usageLine string, stdout, stderr io.Writer) *cniCommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &cniCommand{name: name, fs: fs, stdout: stdout, stderr: stderr}
	c.conflist = fs.String("conflist", "", "the conflist `FILE` to change")
	c.all = fs.Bool("all", false, "change every *.conflist in --dir")
	c.dir = fs.String("dir", cniconf.DefaultDir, "CNI configuration `DIR` for --all")
	c.dryRun = fs.Bool("dry-run", false, "print what would change, write nothing")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	return c
}

// parse parses args; code is the exit code when ok is false.
func (c *cniCommand) parse(args []string) (code int, ok bool) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.fs.SetOutput(c.stdout)
			c.fs.Usage()
			return 0, false
		}
		return 2, false
	}
	switch {
	case c.fs.NArg() > 0:
		return c.usageError("unexpected argument %q", c.fs.Arg(0)), false
	case *c.conflist == "" && !*c.all:
		return c.usageError("give --conflist FILE or --all"), false
	case *c.conflist != "" && *c.all:
		return c.usageError("give --conflist FILE or --all, not both"), false
	}
	return 0, true
}

func (c *cniCommand) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "nsproxy %s: %s\n", c.name, fmt.Sprintf(format, a...))
	c.fs.Usage()
	return 2
}

func (c *cniCommand) fail(err error) {
	fmt.Fprintf(c.stderr, "nsproxy %s: %v\n", c.name, err)
}

// each runs op on --conflist or every conflist of --dir and returns the
// exit code: 1 when any file failed; the others are still processed.
func (c *cniCommand) each(noFiles func() int, op func(path string) error) int {
	paths := []string{*c.conflist}
	if *c.all {
		var notes []string
		var err error
		if paths, notes, err = cniconf.Conflists(*c.dir); err != nil {
			c.fail(err)
			return 1
		}
		for _, n := range notes {
			fmt.Fprintln(c.stdout, n)
		}
	}
	if len(paths) == 0 {
		return noFiles()
	}
	code := 0
	for _, p := range paths {
		if err := op(p); err != nil {
			c.fail(fmt.Errorf("%s: %w", p, err))
			code = 1
		}
	}
	return code
}

// report prints a file's result; with --dry-run also the new content.
func (c *cniCommand) report(path string, res cniconf.Result) {
	fmt.Fprintf(c.stdout, "%s: %s\n", path, res.Summary)
	for _, n := range res.Notes {
		fmt.Fprintf(c.stdout, "  note: %s\n", n)
	}
	if *c.dryRun && res.Out != nil {
		fmt.Fprintf(c.stdout, "  dry run: would write:\n%s", res.Out)
	}
}

func cmdInstallCNI(args []string, stdout, stderr io.Writer) int {
	c := newCNICommand("install-cni", "nsproxy install-cni [--conflist FILE | --all] [--dir DIR] "+
		"[--plugin-config JSON] [--replace-portmap] [--plugin-binary FILE --bin-dir DIR] [--cni-bin-dir DIR[:DIR]] [--dry-run]", stdout, stderr)
	pluginConfig := c.fs.String("plugin-config", "", "`JSON` object of extra keys for the nsproxy-cni entry, e.g. "+
		`'{"strict":true}'; its "capabilities" are merged over portMappings and io.kubernetes.cri.pod-annotations`)
	replacePortmap := c.fs.Bool("replace-portmap", false, "take the portmap plugin out of the chain: nsproxy serves "+
		"TCP port mappings, UDP mappings are no longer forwarded (uninstall-cni puts portmap back)")
	pluginBinary := c.fs.String("plugin-binary", "", "first copy this nsproxy-cni `FILE` into --bin-dir (atomically)")
	binDir := c.fs.String("bin-dir", "", "the runtime's CNI plugin `DIR`; install refuses to reference nsproxy-cni "+
		"when it is not there, since a missing plugin disables the whole network")
	var searchDirs dirList
	c.fs.Var(&searchDirs, "cni-bin-dir", "the runtime's CNI plugin `DIRs` (repeatable, or a colon list) where every "+
		"chained plugin must be; a missing one is warned about on stderr (default: --bin-dir, else "+
		strings.Join(cniconf.DefaultBinDirs, ":")+")")
	if code, ok := c.parse(args); !ok {
		return code
	}
	switch {
	case len(searchDirs) > 0:
	case *binDir != "":
		searchDirs = dirList{*binDir}
	default:
		searchDirs = cniconf.DefaultBinDirs
	}
	if *pluginBinary != "" && *binDir == "" {
		return c.usageError("--plugin-binary needs --bin-dir")
	}
	cfg, err := cniconf.ParsePluginConfig(*pluginConfig)
	if err != nil {
		return c.usageError("--plugin-config: %v", err)
	}
	opt := cniconf.Options{PluginConfig: cfg, ReplacePortmap: *replacePortmap}
	// The plugin binary goes first: a conflist naming a plugin that the
	// runtime cannot find makes it drop the whole network.
	if *pluginBinary != "" {
		msg, err := cniconf.InstallPluginBinary(*pluginBinary, *binDir, *c.dryRun)
		if err != nil {
			c.fail(fmt.Errorf("--plugin-binary: %w", err))
			return 1
		}
		fmt.Fprintln(stdout, msg)
	}
	if *binDir != "" && !*c.dryRun {
		if err := cniconf.CheckPluginBinary(*binDir); err != nil {
			c.fail(err)
			return 1
		}
	}
	changed := false
	code := c.each(func() int {
		c.fail(fmt.Errorf("no *.conflist in %s", *c.dir))
		return 1
	}, func(path string) error {
		res, err := cniconf.InstallFile(path, opt, *c.dryRun)
		if err != nil {
			return err
		}
		c.report(path, res)
		changed = changed || res.Out != nil
		chain := res.Out
		if chain == nil {
			chain, _ = os.ReadFile(path)
		}
		for _, p := range cniconf.MissingPlugins(chain, searchDirs) {
			fmt.Fprintf(stderr, "nsproxy install-cni: warning: %s chains plugin %q, found in none of the CNI plugin "+
				"directories (%s): the runtime drops the whole network (containerd leaves the sandbox SANDBOX_UNKNOWN, "+
				"its veth and IP leaked); install it there or take it out of the chain\n", path, p, strings.Join(searchDirs, ", "))
		}
		return nil
	})
	if changed && *binDir == "" {
		fmt.Fprintf(stdout, "note: the runtime must find %s in its CNI plugin directory (containerd: /opt/cni/bin, "+
			"Debian's podman: /usr/lib/cni), or it drops the whole network\n", cniconf.PluginType)
	}
	return code
}

func cmdUninstallCNI(args []string, stdout, stderr io.Writer) int {
	c := newCNICommand("uninstall-cni", "nsproxy uninstall-cni [--conflist FILE | --all] [--dir DIR] [--dry-run]", stdout, stderr)
	if code, ok := c.parse(args); !ok {
		return code
	}
	return c.each(func() int {
		fmt.Fprintf(stdout, "no *.conflist in %s: nothing to do\n", *c.dir)
		return 0
	}, func(path string) error {
		res, err := cniconf.UninstallFile(path, *c.dryRun)
		if err == nil {
			c.report(path, res)
		}
		return err
	})
}

// dirList collects a repeatable flag whose values may be colon lists.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ":") }

func (d *dirList) Set(v string) error {
	for _, dir := range filepath.SplitList(v) {
		if dir != "" {
			*d = append(*d, dir)
		}
	}
	return nil
}
