package sidecar

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
	"github.com/nsproxy/nsproxy/sidecar/sdnotify"
	"golang.org/x/sys/unix"
)

// The hand-over protocol between a running daemon (old) and its successor
// (new), on the old one's control socket:
//
//	new → old  POST /v1/handover, Upgrade: nsproxy-handover/1
//	old → new  101 Switching Protocols; from now on the old daemon refuses
//	           API writes (503) so that the state files stay as they are
//	new → old  "send\n"
//	old → new  4-byte length + JSON offer (one entry per socket), then the
//	           sockets themselves: 1-byte messages with SCM_RIGHTS, in order
//	new        loads the state files, serves the received sockets instead
//	           of binding, waits until each is served
//	new → old  "commit\n"
//	old → new  "stopped\n" once it no longer accepts anywhere (its fds are
//	           closed; the sockets live on in the successor, nothing is
//	           unlinked); it then drains and exits
//
// If the connection ends before "commit", the old daemon serves on as if
// nothing happened and accepts writes again. So it does when no "commit"
// came within Options.HandoverWait (5 minutes) of the offer; it then
// writes "aborted\n" before it closes the connection, and a successor that
// commits later reads it (ErrHandoverAborted) and steps back instead of
// serving beside the old daemon.
const (
	HandoverPath  = "/v1/handover"
	handoverProto = "nsproxy-handover/1"
	// maxFDsPerMsg stays under the kernel's SCM_MAX_FD (253).
	maxFDsPerMsg = 200
	// maxOffer bounds the JSON offer a successor reads.
	maxOffer = 16 << 20
)

// Roles of handed-over sockets besides frontends' listeners.
const (
	RoleFrontend = "frontend"
	RoleControl  = "control"
	RoleMetrics  = "metrics"
)

// errUpgrading refuses a change of state while a successor takes over:
// it reads the state files, which must stay as they are.
var errUpgrading = errors.New("upgrade in progress: the daemon is handing over to its successor; retry in a moment")

// ErrHandoverRefused: the running daemon answered the hand-over request
// with an error (another hand-over runs, it is too old, permission).
var ErrHandoverRefused = errors.New("nsproxy: the running daemon refused the hand-over")

// ErrHandoverAborted: the old daemon gave up waiting for the commit and
// serves on; the successor must stop accepting and leave.
var ErrHandoverAborted = errors.New("nsproxy: the running daemon gave up the hand-over (no commit in time) and serves on")

// handoverOffer is what the old daemon sends before the sockets.
type handoverOffer struct {
	PID       int                `json:"pid"`
	Listeners []handoverListener `json:"listeners"`
}

// handoverListener describes the socket at the same position: the bind's
// identity (namespace name, address, options) and the identity of the
// namespace the old daemon served it in.
type handoverListener struct {
	Role     string          `json:"role"`
	Frontend string          `json:"frontend,omitempty"`
	Bind     *proxy.BindSpec `json:"bind,omitempty"`
	Netns    *netns.Identity `json:"netns,omitempty"`
}

// handover is the daemon's side of a hand-over.
type handover struct {
	mu     sync.Mutex
	active bool // a successor is taking over: writes are refused
	// offered: the sockets were sent. From then on the control socket's
	// path is the successor's too: this process must not unlink it, even
	// if it is stopped before the successor commits.
	offered bool
	done    chan struct{} // closed once the successor serves
	shared  map[string]net.Listener
	count   int // sockets handed over
	// missed: reloads refused while active (missedFiles, missedManifests),
	// run once the hand-over aborts. A committed successor read the files
	// at its own start; what it missed of the manifest directory it reads
	// when its watch starts, and a SIGHUP must be sent to it again.
	missed reloadKind
}

// reloadKind names what a reload refused during a hand-over reads again.
type reloadKind uint8

const (
	missedFiles reloadKind = 1 << iota
	missedManifests
)

// refuse reports whether a hand-over runs and, if so, remembers the
// reload of kind, in one step with the abort's reset (endAborted).
func (h *handover) refuse(kind reloadKind) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active {
		h.missed |= kind
	}
	return h.active
}

// endAborted ends a hand-over that did not commit: writes and reloads are
// accepted again. It returns the reloads refused meanwhile.
func (h *handover) endAborted() reloadKind {
	h.mu.Lock()
	defer h.mu.Unlock()
	missed := h.missed
	h.active, h.offered, h.missed = false, false, 0
	return missed
}

func (h *handover) doneCh() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	return h.done
}

func (h *handover) inProgress() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.active
}

// ShareListener registers a listener of the daemon's own (the control
// socket, the metrics port) to be handed to a successor with the frontends'.
func (d *Daemon) ShareListener(role string, ln net.Listener) {
	d.ho.mu.Lock()
	defer d.ho.mu.Unlock()
	if d.ho.shared == nil {
		d.ho.shared = map[string]net.Listener{}
	}
	d.ho.shared[role] = ln
}

// HandedOver is closed once a successor serves every listener; the daemon
// then drains and Run returns.
func (d *Daemon) HandedOver() <-chan struct{} { return d.ho.doneCh() }

func (d *Daemon) handedOver() bool {
	select {
	case <-d.HandedOver():
		return true
	default:
		return false
	}
}

func (d *Daemon) notify(states ...string) {
	if err := d.opt.Notifier.Notify(states...); err != nil {
		d.log.Warn("systemd notification failed", "state", strings.Join(states, " "), "err", err.Error())
	}
}

// withHandover serves the hand-over endpoints and refuses API writes while
// a hand-over runs.
func (d *Daemon) withHandover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case HandoverPath, api.UpgradePath:
			cred, _ := r.Context().Value(credKey{}).(*unix.Ucred)
			if cred == nil || (cred.Uid != 0 && int(cred.Uid) != os.Geteuid()) {
				writeJSON(w, http.StatusForbidden, api.Error{Error: "permission denied: only root or the daemon's user may upgrade it"})
				return
			}
			if r.Method != http.MethodPost {
				writeJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "use POST " + r.URL.Path})
				return
			}
			if r.URL.Path == HandoverPath {
				d.serveHandover(w, r)
			} else {
				d.serveUpgrade(w, r)
			}
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && d.ho.inProgress() {
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: errUpgrading.Error()})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveHandover is the old daemon's side of the protocol.
func (d *Daemon) serveHandover(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), handoverProto) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "this endpoint is for `nsproxy run --takeover` (Upgrade: " + handoverProto + ")"})
		return
	}
	d.ho.mu.Lock()
	busy := d.ho.active
	d.ho.active = true
	d.ho.mu.Unlock()
	if busy {
		writeJSON(w, http.StatusConflict, api.Error{Error: "a hand-over is already in progress or done"})
		return
	}
	committed := false
	peer := 0
	if cred, _ := r.Context().Value(credKey{}).(*unix.Ucred); cred != nil {
		peer = int(cred.Pid)
	}
	defer func() {
		if committed {
			return
		}
		missed := d.ho.endAborted()
		d.notify(sdnotify.Ready)
		d.log.Warn("hand-over aborted: serving on", "successor_pid", peer)
		// Hooks that met a 503 in the window wrote their records and went
		// on: take them now, as the successor would have.
		if err := d.ReplayAttachments(); err != nil {
			d.log.Error("attachment records written during the hand-over not applied", "err", err.Error())
			d.mu.Lock()
			if err := d.store.save(d.saved(d.state)); err != nil { // without saveForSuccessor's attachments
				d.log.Error("cannot write state", "path", d.opt.StateFile, "err", err.Error())
			}
			d.mu.Unlock()
		}
		// So are reloads refused in the window: the files may have changed.
		if missed&missedFiles != 0 {
			d.log.Info("reloading the files now: a SIGHUP came during the aborted hand-over")
			if err := d.Reload(); err != nil {
				d.log.Error("reload refused: the running configuration stays", "err", err.Error())
			}
		}
		if missed&missedManifests != 0 {
			d.reloadManifestsLogged()
		}
	}()
	d.notify(sdnotify.ReloadingNow()...)
	d.log.Info("hand-over requested: API writes refused until it ends", "successor_pid", peer)
	// A write that got in before the flag finishes (and is saved) before
	// the successor reads the state files.
	d.mu.Lock()
	d.mu.Unlock() //nolint:staticcheck // an empty critical section waits for mutate

	hj, ok := w.(http.Hijacker)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, api.Error{Error: "connection cannot be taken over"})
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		d.log.Error("hand-over: hijack", "err", err.Error())
		return
	}
	conn = hijacked(conn)
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		d.log.Error("hand-over: not a unix connection", "type", fmt.Sprintf("%T", conn))
		return
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + handoverProto + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if line, err := brw.ReadString('\n'); err != nil || line != "send\n" {
		d.log.Warn("hand-over: successor went away before asking for the sockets", "err", err)
		return
	}
	d.saveForSuccessor()
	offer, files, err := d.handoverOffer()
	if err != nil {
		d.log.Error("hand-over: cannot duplicate listeners", "err", err.Error())
		return
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	d.ho.mu.Lock()
	d.ho.offered = true
	if ul, ok := rawListener(d.ho.shared[RoleControl]).(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	d.ho.mu.Unlock()
	if err := sendOffer(uc, offer, files); err != nil {
		d.log.Warn("hand-over: sending the sockets failed", "err", err.Error())
		return
	}
	// The successor now loads the state and starts serving; that may take
	// a while with many namespaces.
	conn.SetDeadline(time.Now().Add(d.opt.HandoverWait))
	if line, err := brw.ReadString('\n'); err != nil || line != "commit\n" {
		d.log.Warn("hand-over: successor did not commit", "wait", d.opt.HandoverWait.String(), "err", err)
		// A successor still starting must not serve beside us: say so.
		conn.SetDeadline(time.Now().Add(time.Second))
		io.WriteString(conn, "aborted\n")
		return
	}
	committed = true
	d.stopAccepting(len(files))
	io.WriteString(conn, "stopped\n")
	d.log.Info("handed over: no longer accepting; draining established connections",
		"successor_pid", peer, "listeners", len(files), "connections", d.engine.Sessions(),
		"drain_timeout", d.opt.DrainTimeout.String())
}

// saveForSuccessor writes the state file with every attachment, those
// whose records are their durable copy included, in the state's order and
// with the names given: the successor reads it at its start and gives each
// container the name it has here (givenNames), and orders the records as
// they are here (inStateOrder); its listeners say which frontend holds
// each port (inheritedBinds). Without them it gave a contended name or
// port to whichever record's file came first. Older successors take the
// recorded attachments from the records, as always. The successor's
// first save, or this daemon's after an abort, leaves them out again.
func (d *Daemon) saveForSuccessor() {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.saved(d.state)
	s.Attachments = d.state.Attachments
	if err := d.store.save(s); err != nil {
		d.log.Warn("hand-over: state not written with the attachments' names; the successor may give a contended name or port to another container",
			"path", d.opt.StateFile, "err", err.Error())
	}
}

// handoverOffer duplicates every listening socket and describes it.
func (d *Daemon) handoverOffer() (handoverOffer, []*os.File, error) {
	offer := handoverOffer{PID: os.Getpid()}
	handed, err := d.engine.HandOver()
	if err != nil {
		return offer, nil, err
	}
	var files []*os.File
	for _, h := range handed {
		bind, id := h.Bind, h.Netns
		offer.Listeners = append(offer.Listeners, handoverListener{Role: RoleFrontend, Frontend: h.Frontend, Bind: &bind, Netns: &id})
		files = append(files, h.File)
	}
	d.ho.mu.Lock()
	defer d.ho.mu.Unlock()
	for _, role := range []string{RoleControl, RoleMetrics} {
		ln := d.ho.shared[role]
		if ln == nil {
			continue
		}
		f, err := listenerFile(ln)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return offer, nil, fmt.Errorf("%s listener: %w", role, err)
		}
		offer.Listeners = append(offer.Listeners, handoverListener{Role: role})
		files = append(files, f)
	}
	return offer, files, nil
}

func listenerFile(ln net.Listener) (*os.File, error) {
	switch l := rawListener(ln).(type) {
	case *net.UnixListener:
		return l.File()
	case *net.TCPListener:
		return l.File()
	}
	return nil, fmt.Errorf("cannot hand over a %T", ln)
}

// stopAccepting closes every listening fd of this process without
// unlinking anything: the successor holds the same sockets.
// HandedOver is closed first, so that the control and metrics servers see
// their listeners close as the hand-over's doing, not as a failure.
func (d *Daemon) stopAccepting(n int) {
	d.engine.StopAccepting()
	d.ho.mu.Lock()
	d.ho.count = n
	shared := maps.Clone(d.ho.shared)
	d.ho.mu.Unlock()
	close(d.ho.doneCh())
	// Under d.ho.mu, as ServeControl closes the control listener.
	d.ho.mu.Lock()
	defer d.ho.mu.Unlock()
	for _, ln := range shared {
		ln = rawListener(ln)
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		ln.Close()
	}
}

// ControlSocketGivenAway reports whether the control socket's path belongs
// to a successor (the sockets were sent, or the hand-over is done): the
// daemon must not remove it when it stops.
func (d *Daemon) ControlSocketGivenAway() bool {
	d.ho.mu.Lock()
	defer d.ho.mu.Unlock()
	return d.ho.offered
}

func sendOffer(c *net.UnixConn, offer handoverOffer, files []*os.File) error {
	b, err := json.Marshal(offer)
	if err != nil {
		return err
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := c.Write(append(msg, b...)); err != nil {
		return err
	}
	for start := 0; start < len(files); start += maxFDsPerMsg {
		fds, err := rawFDs(files[start:min(start+maxFDsPerMsg, len(files))])
		if err != nil {
			return err
		}
		if _, _, err := c.WriteMsgUnix([]byte{'F'}, unix.UnixRights(fds...), nil); err != nil {
			return err
		}
	}
	return nil
}

// rawFDs are the files' descriptors, read without (*os.File).Fd: Fd puts
// the file into blocking mode, and a dup shares that flag with the socket
// this daemon still accepts on, whose next accept(2) would then block its
// thread for good (and Close would wait on it).
func rawFDs(files []*os.File) ([]int, error) {
	fds := make([]int, 0, len(files))
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, err
		}
		if err := rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) }); err != nil {
			return nil, err
		}
	}
	return fds, nil
}
