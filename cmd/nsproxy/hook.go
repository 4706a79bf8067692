package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/ocihook"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// `nsproxy hook oci STAGE`: flags and the container state on stdin;
// package ocihook does the work.

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
	st, err := ocihook.ParseState(b)
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy hook:", err)
		return 1
	}
	h := ocihook.Hook{Client: hooks.NewClient(*socket, hooks.WithTimeout(5*time.Second)), NetnsDir: *dir, RecordDir: *records,
		Warn: func(msg string) { fmt.Fprintln(stderr, "nsproxy hook:", msg) }}
	if h.RecordDir == "none" {
		h.RecordDir = ""
	}
	if err := h.Run(context.Background(), stage, st); err != nil {
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
