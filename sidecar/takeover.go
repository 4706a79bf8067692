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
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
	"golang.org/x/sys/unix"
)

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
			t.Inherited = append(t.Inherited, proxy.InheritedListener{Bind: *l.Bind, Listener: tl, Frontend: l.Frontend})
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
// ErrHandoverAborted: the old daemon waited no longer and serves on; the
// caller must stop accepting and leave (the sockets are shared).
func (t *Takeover) Commit(timeout time.Duration) error {
	t.conn.SetDeadline(time.Now().Add(timeout))
	_, werr := io.WriteString(t.conn, "commit\n")
	// Read even when the write failed: an old daemon that gave up wrote
	// "aborted" before it closed the connection.
	line, err := t.br.ReadString('\n')
	if line == "aborted\n" {
		t.conn.Close()
		return ErrHandoverAborted
	}
	if werr != nil {
		return fmt.Errorf("commit hand-over: %w", werr)
	}
	if err != nil || line != "stopped\n" {
		return fmt.Errorf("commit hand-over: the old daemon did not confirm (%q): %w", line, err)
	}
	t.conn.Close()
	return nil
}

// TakeoverCommitted tells a successor (Options.TakingOver) that the old
// daemon stopped accepting: the state file is its own now, and what it
// held is written.
func (d *Daemon) TakeoverCommitted() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.store.release(); err != nil {
		d.log.Error("cannot write state", "path", d.opt.StateFile, "err", err.Error())
	}
}

// Withdraw ends a successor whose hand-over the old daemon aborted after
// this one had started serving (ErrHandoverAborted): it stops accepting on
// the shared sockets, which the old daemon still serves, and lets its own
// connections finish (DrainTimeout). It returns how many were cut. The
// state file, the old daemon's, is left as it is (Options.TakingOver).
func (d *Daemon) Withdraw() int {
	forced := d.drain("withdrawing: no longer accepting; draining connections")
	d.reg.Close()
	return forced
}

// Abort gives up: the old daemon serves on. Sockets not yet given away
// are closed (the old daemon still holds them).
func (t *Takeover) Abort() {
	if t == nil {
		return
	}
	t.conn.Close()
	for _, il := range t.Inherited {
		il.Listener.Close()
	}
	t.Inherited = nil
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
	// The records hold the names the containers asked for: the names
	// given stay, new ones get the first free candidate.
	moved := assignNames(d.file, &st, givenNames(d.state))
	p, err := d.plan(d.file, st)
	for err != nil && d.dropRefused(&st, err, "replay") > 0 {
		p, err = d.plan(d.file, st) // a record the plan refuses must not stop the others
	}
	if err != nil {
		return err
	}
	// saved: the --manifests directory's documents and the recorded
	// attachments have their own durable copies, never the state file.
	st.Ports = p.ports
	if err := d.store.save(d.saved(st)); err != nil {
		d.log.Error("cannot write state", "path", d.opt.StateFile, "err", err.Error())
	}
	if err := d.commit(st, p); err != nil {
		return err
	}
	d.logNames(moved)
	return nil
}
