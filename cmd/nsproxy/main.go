// Command nsproxy is the namespace-aware TCP proxy daemon and its CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/sidecar"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `nsproxy: a namespace-aware TCP proxy

Usage:
  nsproxy run -f FILE [-f FILE ...] [flags]   run the daemon
  nsproxy validate -f FILE [-f FILE ...]      check configuration files, list every problem
  nsproxy version                             print the version

Signals (run): SIGHUP reloads the files (a bad configuration keeps the old one
running), SIGTERM/SIGINT drain connections and stop.
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
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "nsproxy", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nsproxy: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f files
	fs.Var(&f, "f", "configuration file (repeatable)")
	if err := fs.Parse(args); err != nil {
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(f) == 0 {
		fmt.Fprintln(stderr, "nsproxy run: give at least one -f FILE")
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy run:", err)
		return 2
	}
	d, err := sidecar.New(sidecar.Options{ConfigFiles: f, NetnsDir: *netnsDir, DrainTimeout: *drain, Logger: log})
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := d.Run(ctx, reload); err != nil {
		printErrors(stderr, err)
		return 1
	}
	return 0
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
