package sidecar

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
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
// nothing happened and accepts writes again.
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

// SuccessorOptions say how `nsproxy upgrade` starts a successor.
type SuccessorOptions struct {
	// Binary is started when the request names none: the path this daemon
	// was started from, so that a package upgrade's new file runs.
	Binary string
	// Args are the successor's arguments, including "run" and "--takeover".
	Args []string
}

// handover is the daemon's side of a hand-over.
type handover struct {
	mu     sync.Mutex
	active bool          // a successor is taking over: writes are refused
	done   chan struct{} // closed once the successor serves
	shared map[string]net.Listener
	count  int // sockets handed over
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
		d.ho.mu.Lock()
		d.ho.active = false
		d.ho.mu.Unlock()
		d.notify(sdnotify.Ready)
		d.log.Warn("hand-over aborted: serving on", "successor_pid", peer)
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
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
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
	if err := sendOffer(uc, offer, files); err != nil {
		d.log.Warn("hand-over: sending the sockets failed", "err", err.Error())
		return
	}
	// The successor now loads the state and starts serving; that may take
	// a while with many namespaces.
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	if line, err := brw.ReadString('\n'); err != nil || line != "commit\n" {
		d.log.Warn("hand-over: successor did not commit", "err", err)
		return
	}
	committed = true
	d.stopAccepting(len(files))
	io.WriteString(conn, "stopped\n")
	d.log.Info("handed over: no longer accepting; draining established connections",
		"successor_pid", peer, "listeners", len(files), "connections", d.engine.Sessions(),
		"drain_timeout", d.opt.DrainTimeout.String())
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
	switch l := ln.(type) {
	case *net.UnixListener:
		return l.File()
	case *net.TCPListener:
		return l.File()
	}
	return nil, fmt.Errorf("cannot hand over a %T", ln)
}

// stopAccepting closes every listening fd of this process without
// unlinking anything: the successor holds the same sockets.
func (d *Daemon) stopAccepting(n int) {
	d.engine.StopAccepting()
	d.ho.mu.Lock()
	for _, ln := range d.ho.shared {
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		ln.Close()
	}
	d.ho.count = n
	d.ho.mu.Unlock()
	close(d.ho.doneCh())
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
		var fds []int
		for _, f := range files[start:min(start+maxFDsPerMsg, len(files))] {
			fds = append(fds, int(f.Fd()))
		}
		if _, _, err := c.WriteMsgUnix([]byte{'F'}, unix.UnixRights(fds...), nil); err != nil {
			return err
		}
	}
	return nil
}

// Takeover is the successor's side: the sockets received from the running
// daemon, to be served before Commit.
type Takeover struct {
	conn      *net.UnixConn
	br        *bufio.Reader
	OldPID    int
	Inherited []proxy.InheritedListener
	shared    map[string]net.Listener
}

// BeginTakeover asks the daemon on socket for its listening sockets. From
// its answer on, the running daemon refuses API writes, so the state files
// can be read. It returns nil, nil when no daemon listens on socket.
func BeginTakeover(ctx context.Context, socket string) (*Takeover, error) {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil
		}
		return nil, fmt.Errorf("take over from %s: %w", socket, err)
	}
	t := &Takeover{conn: c.(*net.UnixConn), shared: map[string]net.Listener{}}
	ok := false
	defer func() {
		if !ok {
			t.Abort()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "POST "+HandoverPath+" HTTP/1.1\r\nHost: nsproxy\r\nConnection: Upgrade\r\nUpgrade: "+
		handoverProto+"\r\nContent-Length: 0\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("take over from %s: %w", socket, err)
	}
	t.br = bufio.NewReader(c)
	resp, err := http.ReadResponse(t.br, nil)
	if err != nil {
		return nil, fmt.Errorf("take over from %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		var body api.Error
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			body.Error = "the running daemon is too old to hand over; stop it, then start this one"
		}
		return nil, fmt.Errorf("%w: %d %s", ErrHandoverRefused, resp.StatusCode, body.Error)
	}
	if t.br.Buffered() > 0 {
		return nil, errors.New("take over: the daemon sent data too early")
	}
	if _, err := io.WriteString(c, "send\n"); err != nil {
		return nil, err
	}
	offer, fds, err := receiveOffer(t.conn)
	if err != nil {
		return nil, fmt.Errorf("take over from %s: %w", socket, err)
	}
	t.OldPID = offer.PID
	var errs []error
	for i, l := range offer.Listeners {
		f := os.NewFile(uintptr(fds[i]), "inherited-"+l.Role)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s socket %d: %w", l.Role, i, err))
			continue
		}
		switch {
		case l.Role == RoleFrontend:
			tl, isTCP := ln.(*net.TCPListener)
			if !isTCP {
				ln.Close()
				errs = append(errs, fmt.Errorf("frontend %s: not a TCP listener", l.Frontend))
				continue
			}
			t.Inherited = append(t.Inherited, proxy.InheritedListener{Bind: *l.Bind, Listener: tl})
		case l.Role == RoleControl || l.Role == RoleMetrics:
			t.shared[l.Role] = ln
		default:
			ln.Close()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("take over from %s: %w", socket, err)
	}
	c.SetDeadline(time.Time{})
	ok = true
	return t, nil
}

// receiveOffer reads the JSON offer, then exactly one fd per listener.
func receiveOffer(c *net.UnixConn) (handoverOffer, []int, error) {
	offer, err := decodeOffer(c)
	if err != nil {
		return offer, nil, err
	}
	var fds []int
	oob := make([]byte, unix.CmsgSpace(maxFDsPerMsg*4))
	for len(fds) < len(offer.Listeners) {
		var one [1]byte
		_, oobn, _, _, err := c.ReadMsgUnix(one[:], oob)
		if err != nil {
			closeFDs(fds)
			return offer, nil, err
		}
		got, err := parseRights(oob[:oobn])
		fds = append(fds, got...)
		if err != nil || len(got) == 0 {
			closeFDs(fds)
			return offer, nil, fmt.Errorf("expected sockets, got none: %v", err)
		}
	}
	if len(fds) != len(offer.Listeners) {
		closeFDs(fds)
		return offer, nil, fmt.Errorf("%d sockets for %d listeners", len(fds), len(offer.Listeners))
	}
	return offer, fds, nil
}

// decodeOffer reads a length-prefixed JSON offer and checks that every
// entry can be matched: a known role, and a bind for each frontend.
func decodeOffer(r io.Reader) (handoverOffer, error) {
	var offer handoverOffer
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return offer, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxOffer {
		return offer, fmt.Errorf("offer of %d bytes is too large (at most %d)", n, maxOffer)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return offer, err
	}
	if err := json.Unmarshal(b, &offer); err != nil {
		return offer, fmt.Errorf("bad offer: %w", err)
	}
	for i, l := range offer.Listeners {
		switch {
		case l.Role == RoleFrontend && (l.Bind == nil || !l.Bind.Addr.IsValid()):
			return offer, fmt.Errorf("bad offer: listener %d of frontend %q has no bind address", i, l.Frontend)
		case l.Role != RoleFrontend && l.Role != RoleControl && l.Role != RoleMetrics:
			return offer, fmt.Errorf("bad offer: listener %d has unknown role %q", i, l.Role)
		}
	}
	return offer, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			closeFDs(fds)
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Listener returns the received socket of a role (control, metrics) and
// gives up the Takeover's claim on it; nil when the old daemon had none.
func (t *Takeover) Listener(role string) net.Listener {
	ln := t.shared[role]
	delete(t.shared, role)
	return ln
}

// Commit tells the old daemon to stop accepting and waits until it has.
func (t *Takeover) Commit(timeout time.Duration) error {
	t.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(t.conn, "commit\n"); err != nil {
		return fmt.Errorf("commit hand-over: %w", err)
	}
	line, err := t.br.ReadString('\n')
	if err != nil || line != "stopped\n" {
		return fmt.Errorf("commit hand-over: the old daemon did not confirm (%q): %w", line, err)
	}
	t.conn.Close()
	return nil
}

// Abort gives up: the old daemon serves on. Sockets not yet given away
// are closed (the old daemon still holds them).
func (t *Takeover) Abort() {
	if t == nil {
		return
	}
	t.conn.Close()
	for _, ln := range t.shared {
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		ln.Close()
	}
	t.shared = nil
}

// ReplayAttachments reads the CNI plugin's records again and applies them:
// a record written while the old daemon refused writes during a hand-over
// is picked up by its successor.
func (d *Daemon) ReplayAttachments() error {
	if d.opt.AttachmentDir == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.replay(d.state.clone())
	p, err := d.plan(d.file, st)
	if err != nil {
		return err
	}
	if err := d.store.save(st); err != nil {
		d.log.Error("cannot write state", "path", d.opt.StateFile, "err", err.Error())
	}
	return d.commit(st, p)
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
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		writeJSON(w, http.StatusGatewayTimeout, api.Error{Error: "the new daemon did not take over within 5 minutes; it was killed, this daemon serves on"})
	}
}
