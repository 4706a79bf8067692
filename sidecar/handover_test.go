package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/sdnotify"
	"golang.org/x/sys/unix"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// echoServer answers each connection with tag+"\n".
func echoServer(t testing.TB, tag string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, tag+"\n")
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func askTag(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	testwait.For(t, 5*time.Second, what, f)
}

// TestHandoverProtocol: a successor receives the listening sockets; while
// it holds them the old daemon refuses writes with 503 and a second
// hand-over; an abort gives the old daemon its writes back; a commit makes
// it stop accepting and return from Run, and the successor serves the
// same socket.
func TestHandoverProtocol(t *testing.T) {
	port := freeTCPPort(t)
	be := echoServer(t, "backend")
	cfg := fmt.Sprintf("frontend web\n    bind 127.0.0.1:%d\n    default_backend web\nbackend web\n    server s1 127.0.0.1:%d\n", port, be)
	td := startTestDaemon(t, cfg, "")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, "old daemon serves", func() error { _, err := askTag(addr); return err })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tk, err := BeginTakeover(ctx, td.socket)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v, %v", tk, err)
	}
	if tk.OldPID != os.Getpid() || len(tk.Inherited) != 1 || tk.Inherited[0].Bind.Addr.String() != addr {
		t.Fatalf("offer: pid %d, %+v", tk.OldPID, tk.Inherited)
	}
	code, e := td.call("POST", "/v1/namespaces", api.Namespace{Name: "x", Path: "/proc/1/ns/net"}, nil)
	if code != 503 || !strings.Contains(e.Error, "upgrade in progress") {
		t.Fatalf("write during hand-over: %d %q, want 503 upgrade in progress", code, e.Error)
	}
	if code, _ := td.call("GET", "/v1/frontends", nil, nil); code != 200 {
		t.Fatalf("read during hand-over: %d", code)
	}
	if _, err := BeginTakeover(ctx, td.socket); !errors.Is(err, ErrHandoverRefused) {
		t.Fatalf("second hand-over: %v, want ErrHandoverRefused", err)
	}
	if got, err := askTag(addr); err != nil || got != "backend" {
		t.Fatalf("old daemon stopped serving during the hand-over: %q %v", got, err)
	}
	for _, x := range tk.Inherited {
		x.Listener.Close()
	}
	tk.Abort()
	waitFor(t, "writes accepted after abort", func() error {
		if code, e := td.call("DELETE", "/v1/namespaces/none", nil, nil); code == 503 {
			return errors.New(e.Error)
		}
		return nil
	})
	if got, err := askTag(addr); err != nil || got != "backend" {
		t.Fatalf("old daemon does not serve after the abort: %q %v", got, err)
	}

	// Now for real: a second daemon takes over and commits.
	tk, err = BeginTakeover(ctx, td.socket)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover again: %v", err)
	}
	logB := &testlog.Buffer{}
	cfgPath := filepath.Join(t.TempDir(), "b.cfg")
	mustWrite(t, cfgPath, cfg)
	b, err := New(Options{ConfigFiles: []string{cfgPath}, StateFile: td.state, Inherited: tk.Inherited,
		Logger: slog.New(slog.NewTextHandler(logB, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { b.Run(bctx, nil); close(bdone) }()
	t.Cleanup(func() { bcancel(); <-bdone })
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if left := b.Engine().WaitInherited(wctx); left != 0 {
		t.Fatalf("%d received listeners not served", left)
	}
	if err := tk.Commit(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-td.d.HandedOver():
	case <-time.After(5 * time.Second):
		t.Fatal("old daemon not handed over after commit")
	}
	for _, l := range td.d.Engine().Listeners() {
		if l.Listening {
			t.Fatalf("old daemon still listens: %+v", l)
		}
	}
	for range 5 {
		if got, err := askTag(addr); err != nil || got != "backend" {
			t.Fatalf("successor does not serve the taken-over socket: %q %v\n%s", got, err, logB)
		}
	}
	if !strings.Contains(logB.String(), "listener taken over") || strings.Contains(logB.String(), "cannot listen") {
		t.Fatalf("successor bound instead of taking over:\n%s", logB)
	}
}

// TestNewWithoutFiles: a daemon without configuration files is a valid
// pure CNI/OCI host daemon, and it reloads.
func TestNewWithoutFiles(t *testing.T) {
	testns.RequireRoot(t)
	d, err := New(Options{StateFile: filepath.Join(t.TempDir(), "state.json"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New without files: %v", err)
	}
	defer d.Registry().Close()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatalf("Reload without files: %v", err)
	}
}

// TestUpgradeSuccessorFails: a successor that exits before taking over
// fails the upgrade request with its reason, and the old daemon serves on
// and accepts writes.
func TestUpgradeSuccessorFails(t *testing.T) {
	td := startTestDaemon(t, "", "")
	code, e := td.call("POST", api.UpgradePath, api.UpgradeRequest{}, nil)
	if code != 409 || !strings.Contains(e.Error, "--takeover") {
		t.Fatalf("upgrade without successor options: %d %q", code, e.Error)
	}
	td.d.opt.Successor = &SuccessorOptions{Binary: "/bin/false"}
	code, e = td.call("POST", api.UpgradePath, api.UpgradeRequest{}, nil)
	if code != 500 || !strings.Contains(e.Error, "exited before taking over") {
		t.Fatalf("failing successor: %d %q", code, e.Error)
	}
	code, e = td.call("POST", api.UpgradePath, api.UpgradeRequest{Binary: "/nonexistent/nsproxy"}, nil)
	if code != 400 || !strings.Contains(e.Error, "not an executable") {
		t.Fatalf("missing binary: %d %q", code, e.Error)
	}
	if code, e := td.call("DELETE", "/v1/namespaces/none", nil, nil); code == 503 {
		t.Fatalf("writes refused after a failed upgrade: %q", e.Error)
	}
	if td.d.handedOver() {
		t.Fatal("handed over to nobody")
	}
}

// TestDaemonNotifiesSystemd: READY=1 once the state is applied,
// RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload,
// STOPPING=1 on shutdown, on a test-owned notification socket.
func TestDaemonNotifiesSystemd(t *testing.T) {
	testns.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := sdnotify.New(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Notifier: n, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{})
	done := make(chan struct{})
	go func() { d.Run(ctx, reload); close(done) }()
	next := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:k])
	}
	if got := next(); got != "READY=1\n" {
		t.Fatalf("start: %q", got)
	}
	reload <- struct{}{}
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("reload: %q", got)
	}
	if got := next(); got != "READY=1\n" {
		t.Fatalf("after reload: %q", got)
	}
	cancel()
	if got := next(); got != "STOPPING=1\n" {
		t.Fatalf("stop: %q", got)
	}
	<-done
}

// TestMutateRefusedDuringHandover: a write that passed the HTTP check just
// before a hand-over began is refused where the state changes, so the
// files the successor reads cannot change under it.
func TestMutateRefusedDuringHandover(t *testing.T) {
	td := startTestDaemon(t, "", "")
	td.d.ho.mu.Lock()
	td.d.ho.active = true
	td.d.ho.mu.Unlock()
	err := td.d.DeleteFrontend("none")
	if !errors.Is(err, errUpgrading) {
		t.Fatalf("DeleteFrontend during a hand-over: %v", err)
	}
	if code, _ := errorBody(err); code != 503 {
		t.Fatalf("status %d, want 503", code)
	}
	td.d.ho.mu.Lock()
	td.d.ho.active = false
	td.d.ho.mu.Unlock()
}

// TestHandoverKeepsListenersNonBlocking: sending a listening socket to a
// successor leaves the socket this daemon still accepts on non-blocking.
// (*os.File).Fd cleared O_NONBLOCK on the shared file description, so the
// old daemon's next accept blocked its thread and Close waited on it
// forever (a hung sidecar test run showed it).
func TestHandoverKeepsListenersNonBlocking(t *testing.T) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "l.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := rawFDs([]*os.File{f}); err != nil {
		t.Fatal(err)
	}
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the listener is in blocking mode after its fd was taken for a hand-over")
	}
}

// TestReloadRefusedDuringHandoverRunsAfterAbort: a reload while a
// successor takes over is refused (the successor read the files already)
// and, when the hand-over aborts, the old daemon runs it by itself.
func TestReloadRefusedDuringHandoverRunsAfterAbort(t *testing.T) {
	be := echoServer(t, "backend")
	cfgA := fmt.Sprintf("frontend web\n    bind 127.0.0.1:24400\n    default_backend app\nbackend app\n    server s1 127.0.0.1:%d\n", be)
	cfgB := cfgA + "frontend extra\n    bind 127.0.0.1:24401\n    default_backend app\n"
	td := startTestDaemon(t, cfgA, "")
	waitFor(t, "daemon serves", func() error { _, err := askTag("127.0.0.1:24400"); return err })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, td.socket)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	mustWrite(t, td.d.opt.ConfigFiles[0], cfgB)
	if err := td.d.Reload(); !errors.Is(err, errUpgrading) {
		tk.Abort()
		t.Fatalf("reload during a hand-over: %v, want errUpgrading", err)
	}
	if _, err := askTag("127.0.0.1:24401"); err == nil {
		t.Error("the refused reload was applied")
	}
	tk.Abort()
	waitFor(t, "the reload refused during the aborted hand-over runs", func() error {
		_, err := askTag("127.0.0.1:24401")
		return err
	})
	if err := td.d.Reload(); err != nil {
		t.Errorf("reload after the abort: %v", err)
	}
}

// TestHandoverStateCarriesNamesOnlyForTheSuccessor: the state file a
// hand-over writes holds the recorded attachments with their names, for
// the successor; once a hand-over aborts (and once a successor started)
// the state file holds them no more: their records are their copy.
func TestHandoverStateCarriesNamesOnlyForTheSuccessor(t *testing.T) {
	attDir := t.TempDir()
	ns := testns.Add(t, fmt.Sprintf("fxu%dsn", os.Getpid()%10000))
	d, sock, _ := sharedDaemon(t, attDir)
	td := &testDaemon{t: t, d: d, socket: sock, http: unixClient(sock)}
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "fxu1", IfName: "eth0"}, Source: api.SourceCNI,
		Name: "fxuweb", Netns: filepath.Join("/var/run/netns", ns), IPs: []string{"10.77.9.2/24"}}
	if err := hooks.WriteRecord(attDir, a); err != nil {
		t.Fatal(err)
	}
	if code, e := td.call("POST", "/v1/attachments", a, nil); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if strings.Contains(readFile(t, d.opt.StateFile), "fxu1") {
		t.Fatal("a CNI attachment in the state file before any hand-over")
	}
	for _, commit := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tk, err := BeginTakeover(ctx, sock)
		cancel()
		if err != nil || tk == nil {
			t.Fatalf("BeginTakeover: %v", err)
		}
		if !strings.Contains(readFile(t, d.opt.StateFile), `"fxuweb"`) {
			tk.Abort()
			t.Fatal("the state file written for the successor lacks the attachment's name")
		}
		if !commit {
			tk.Abort()
			waitFor(t, "the aborted hand-over's state file", func() error {
				if strings.Contains(readFile(t, d.opt.StateFile), "fxu1") {
					return errors.New("still holds the recorded attachment")
				}
				return nil
			})
			continue
		}
		b := successorOf(t, tk, d.opt.StateFile, attDir)
		if strings.Contains(readFile(t, d.opt.StateFile), "fxu1") {
			t.Error("the successor's state file holds the recorded attachment")
		}
		if n := b.attachmentName(a.AttachmentKey); n != "fxuweb" {
			t.Errorf("successor: the attachment is named %q", n)
		}
	}
}

// TestManifestDirDuringHandover: a --manifests change while a successor
// takes over is not applied by the old daemon (the successor reads the
// directory); once the hand-over aborts, the old daemon applies it.
func TestManifestDirDuringHandover(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("fxua", 2000))
	d, err := New(Options{StateFile: filepath.Join(dir, "state.json"), ManifestDir: mdir, ManifestResync: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		stopDaemon(d)
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	ln, err := ListenControl(ControlOptions{Socket: sock, Group: -1})
	if err != nil {
		stopDaemon(d)
		t.Fatal(err)
	}
	d.ShareListener(RoleControl, ln)
	ctx, cancel := context.WithCancel(context.Background())
	ran, served := make(chan struct{}), make(chan struct{})
	go func() { d.Run(ctx, nil); close(ran) }()
	go func() { d.ServeControl(ctx, ln, -1); close(served) }()
	t.Cleanup(func() { cancel(); <-served; <-ran })
	tenants := func() []string { return tenantNames(d.tenantViews(access{all: true, who: "root"})) }

	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()
	tk, err := BeginTakeover(tctx, sock)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	mustWrite(t, filepath.Join(mdir, "b.yaml"), tenantDoc("fxub", 2001))
	if err := d.ReloadManifests(); !errors.Is(err, errUpgrading) {
		tk.Abort()
		t.Fatalf("manifest reload during a hand-over: %v, want errUpgrading", err)
	}
	if ts := tenants(); slices.Contains(ts, "fxub") {
		tk.Abort()
		t.Fatalf("applied during the hand-over: %v", ts)
	}
	tk.Abort()
	waitFor(t, "the directory applied after the aborted hand-over", func() error {
		if ts := tenants(); !slices.Contains(ts, "fxub") {
			return fmt.Errorf("tenants %v", ts)
		}
		return nil
	})
}

// successorOf starts a daemon on the state file and records of the one tk
// takes over from, with its sockets, and commits the hand-over: what `run
// --takeover` does. The successor stops at the test's end.
func successorOf(t *testing.T, tk *Takeover, stateFile, attDir string) *Daemon {
	t.Helper()
	b, err := New(Options{StateFile: stateFile, AttachmentDir: attDir, Inherited: tk.Inherited, TakingOver: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tk.Abort()
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDaemon(b) })
	if err := b.Start(); err != nil {
		tk.Abort()
		t.Fatal(err)
	}
	if err := tk.Commit(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.TakeoverCommitted() // as run --takeover does
	return b
}

// TestLateCommitIsRefused: a successor that commits after the old daemon
// stopped waiting (HandoverWait; 5 minutes by default, a start with many
// namespaces may take longer) learns that the hand-over was aborted
// (ErrHandoverAborted) instead of a bare "did not confirm": the old daemon
// serves on, so the successor must not serve beside it. Before, `run
// --takeover` logged "both may accept for a while" and served on for good:
// two daemons accepting on the same sockets and the same control socket,
// each with its own state.
func TestLateCommitIsRefused(t *testing.T) {
	d, sock, _ := sharedDaemonWith(t, Options{HandoverWait: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, sock)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	defer tk.Abort()
	td := &testDaemon{t: t, d: d, socket: sock, http: unixClient(sock)}
	// The old daemon gives up and takes writes again.
	waitFor(t, "the old daemon to give up the hand-over", func() error {
		if code, e := td.call("POST", "/v1/backends", api.Backend{Name: "late"}, nil); code != 201 {
			return fmt.Errorf("POST: %d %s", code, e.Error)
		}
		return nil
	})
	if err := tk.Commit(5 * time.Second); !errors.Is(err, ErrHandoverAborted) {
		t.Fatalf("a commit after the old daemon gave up: %v, want ErrHandoverAborted", err)
	}
}
