package sidecar

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// SuccessorOptions say how `nsproxy upgrade` starts a successor.
type SuccessorOptions struct {
	// Binary is started when the request names none: the path this daemon
	// was started from, so that a package upgrade's new file runs.
	Binary string
	// Args are the successor's arguments, including "run" and "--takeover".
	Args []string
}

// serveUpgrade starts the successor and answers once it serves (or failed).
func (d *Daemon) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	var req api.UpgradeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			code, body := errorBody(err)
			writeJSON(w, code, body)
			return
		}
	}
	if d.opt.Successor == nil {
		writeJSON(w, http.StatusConflict, api.Error{Error: "this daemon cannot start its successor; start the new binary with `nsproxy run --takeover` and the same flags"})
		return
	}
	if d.ho.inProgress() {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: "upgrade in progress: retry in a moment"})
		return
	}
	bin := req.Binary
	if bin == "" {
		bin = d.opt.Successor.Binary
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("binary %q is not an executable file", bin)})
		return
	}
	cmd := exec.Command(bin, d.opt.Successor.Args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The successor becomes the watchdog's process once it names itself
	// MAINPID; $WATCHDOG_PID names this one.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WATCHDOG_PID=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		writeJSON(w, http.StatusInternalServerError, api.Error{Error: fmt.Sprintf("start %s: %v", bin, err)})
		return
	}
	d.log.Info("upgrade: successor started", "binary", bin, "pid", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-d.HandedOver():
		d.ho.mu.Lock()
		n := d.ho.count
		d.ho.mu.Unlock()
		writeJSON(w, http.StatusOK, api.UpgradeResult{OldPID: os.Getpid(), NewPID: cmd.Process.Pid, Binary: bin, Listeners: n})
	case err := <-exited:
		writeJSON(w, http.StatusInternalServerError, api.Error{Error: fmt.Sprintf(
			"the new daemon (pid %d) exited before taking over (%v); this daemon serves on; see the new daemon's messages in this daemon's log",
			cmd.Process.Pid, err)})
	case <-time.After(d.upgradeBound()):
		// A successor late for its commit is told "aborted" (HandoverWait
		// after the offer) and withdraws on its own; one still here has
		// not even taken the sockets: ask it to stop, then insist.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(d.opt.DrainTimeout + 10*time.Second):
			cmd.Process.Kill()
		}
		writeJSON(w, http.StatusGatewayTimeout, api.Error{Error: fmt.Sprintf(
			"the new daemon did not take over within %s; it was stopped, this daemon serves on", d.upgradeBound())})
	}
}

// upgradeBound is how long `nsproxy upgrade` lets its successor run before
// stopping it: longer than a hand-over may wait for the commit
// (HandoverWait, counted from the offer) plus the successor's drain when
// it withdraws, so that a late successor hears "aborted" and leaves on its
// own instead of being killed while it serves.
func (d *Daemon) upgradeBound() time.Duration {
	return d.opt.HandoverWait + d.opt.DrainTimeout + time.Minute
}
