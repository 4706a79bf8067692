package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/sidecar"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/sdnotify"
)

const upgradeUsage = `  nsproxy upgrade [--binary PATH] [--socket PATH] [--timeout 8m]
      ask the running daemon to start PATH (default: the file it was started
      from) with its own run flags plus --takeover; the new daemon takes over
      every listening socket, the old one drains (--drain-timeout) and exits.
`

// successorOptions: `nsproxy upgrade` restarts this daemon's own path with
// the same run arguments, plus --takeover.
func successorOptions(runArgs []string) *sidecar.SuccessorOptions {
	bin, err := os.Executable()
	if err != nil {
		return nil
	}
	args := append([]string{"run"}, runArgs...)
	if !slices.ContainsFunc(runArgs, func(a string) bool {
		return a == "--takeover" || a == "-takeover" || strings.HasPrefix(a, "--takeover=") || strings.HasPrefix(a, "-takeover=")
	}) {
		args = append(args, "--takeover")
	}
	return &sidecar.SuccessorOptions{Binary: bin, Args: args}
}

// beginTakeover asks the daemon on socket for its listening sockets; nil
// when none runs.
func beginTakeover(ctx context.Context, socket string, log *slog.Logger) (*sidecar.Takeover, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tk, err := sidecar.BeginTakeover(tctx, socket)
	// A daemon that stops while we ask (SIGTERM) cuts the connection and
	// removes its socket: ask again, and start normally once it is gone.
	for try := 0; err != nil && !errors.Is(err, sidecar.ErrHandoverRefused) && try < 3 && tctx.Err() == nil; try++ {
		log.Warn("takeover: asking again", "err", err.Error())
		time.Sleep(500 * time.Millisecond)
		tk, err = sidecar.BeginTakeover(tctx, socket)
	}
	if err != nil {
		return nil, err
	}
	if tk == nil {
		log.Info("takeover: no daemon running on the control socket; starting normally", "socket", socket)
		return nil, nil
	}
	log.Info("takeover: received the running daemon's sockets", "old_pid", tk.OldPID, "listeners", len(tk.Inherited))
	return tk, nil
}

// finishTakeover applies the state with the received sockets, waits until
// each is served, then tells the old daemon to stop accepting. A failure
// before the commit leaves the old daemon serving.
func finishTakeover(d *sidecar.Daemon, tk *sidecar.Takeover, notifier *sdnotify.Notifier, log *slog.Logger) error {
	start := time.Now()
	if err := d.Start(); err != nil {
		tk.Abort()
		return err
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	left := d.Engine().WaitInherited(wctx)
	cancel()
	if left > 0 {
		log.Warn("takeover: some received listeners were not served (their namespace is missing); closed", "count", left)
	}
	// Name ourselves systemd's main process before the old one may exit:
	// systemd reads notifications before it reaps, and an exit of the main
	// process it still knows would stop the service.
	if err := notifier.Notify(sdnotify.MainPID(os.Getpid()), sdnotify.Ready); err != nil {
		log.Warn("systemd notification failed", "err", err.Error())
	}
	err := tk.Commit(30 * time.Second)
	if errors.Is(err, sidecar.ErrHandoverAborted) {
		// The old daemon stopped waiting (this start took longer than its
		// hand-over wait) and serves on: two daemons must not serve the
		// same sockets, each with its own state. Give systemd its main
		// process back, and leave.
		log.Error("takeover: the old daemon gave up waiting for this one and serves on; withdrawing", "old_pid", tk.OldPID,
			"duration", time.Since(start).String())
		if err := notifier.Notify(sdnotify.MainPID(tk.OldPID)); err != nil {
			log.Warn("systemd notification failed", "err", err.Error())
		}
		forced := d.Withdraw()
		return fmt.Errorf("takeover: %w (started in %s; %d connections cut)", err, time.Since(start).Round(time.Millisecond), forced)
	}
	// Committed, or the old daemon is gone: the state file is ours now.
	d.TakeoverCommitted()
	if err != nil {
		// Every listener is served here already: serve on, but say so.
		log.Error("takeover: the old daemon did not confirm; both may accept for a while", "old_pid", tk.OldPID, "err", err.Error())
	} else {
		log.Info("takeover: the old daemon stopped accepting and drains", "old_pid", tk.OldPID,
			"duration", time.Since(start).String())
	}
	if err := d.ReplayAttachments(); err != nil {
		log.Warn("takeover: attachment records not replayed again", "err", err.Error())
	}
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func cmdUpgrade(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("binary", "", "new nsproxy binary (default: the path the running daemon was started from)")
	socket := fs.String("socket", api.DefaultSocket, "control socket of the running daemon")
	// Longer than the daemon's own bound (its hand-over wait, 5 minutes,
	// plus the successor's drain and a minute), so that its answer says
	// what happened.
	timeout := fs.Duration("timeout", 8*time.Minute, "how long to wait for the new daemon to take over")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nsproxy upgrade: unexpected argument %q\nusage:\n%s", fs.Arg(0), upgradeUsage)
		return 2
	}
	req := api.UpgradeRequest{Binary: *bin}
	if req.Binary != "" && !strings.HasPrefix(req.Binary, "/") {
		// The daemon resolves relative paths against its own directory.
		wd, err := os.Getwd()
		if err == nil {
			req.Binary = wd + "/" + req.Binary
		}
	}
	c := api.NewClient(*socket, api.WithTimeout(*timeout))
	res, err := c.Upgrade(context.Background(), req)
	if err != nil {
		fmt.Fprintln(stderr, "nsproxy upgrade:", errorText(err))
		return 1
	}
	fmt.Fprintf(stdout, "upgraded: pid %d (%s) serves %d listeners; pid %d drains its connections and exits\n",
		res.NewPID, res.Binary, res.Listeners, res.OldPID)
	return 0
}
