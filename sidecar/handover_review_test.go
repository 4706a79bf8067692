package sidecar

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// sharedDaemon runs a daemon whose control socket is shared for a
// hand-over, as `nsproxy run` does. stop ends Run and the control server.
func sharedDaemon(t *testing.T, attachmentDir string) (d *Daemon, sock string, stop func()) {
	t.Helper()
	return sharedDaemonWith(t, Options{AttachmentDir: attachmentDir})
}

// sharedDaemonWith is sharedDaemon with more options (a state file in a
// temporary directory, and a logger, are added).
func sharedDaemonWith(t *testing.T, opt Options) (d *Daemon, sock string, stop func()) {
	t.Helper()
	testns.RequireRoot(t)
	dir := t.TempDir()
	logBuf := &testlog.Buffer{}
	opt.StateFile, opt.Logger = filepath.Join(dir, "state.json"), slog.New(slog.NewTextHandler(logBuf, nil))
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "ctl.sock")
	ln, err := ListenControl(ControlOptions{Socket: sock, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	d.ShareListener(RoleControl, ln)
	ctx, cancel := context.WithCancel(context.Background())
	ran, served := make(chan struct{}), make(chan struct{})
	go func() { d.Run(ctx, nil); close(ran) }()
	go func() { d.ServeControl(ctx, ln, -1); close(served) }()
	var once bool
	stop = func() {
		if !once {
			once = true
			cancel()
			<-served
			<-ran
		}
	}
	t.Cleanup(stop)
	return d, sock, stop
}

// TestStopDuringHandoverKeepsSocketPath (review finding): once the sockets
// were sent, the control socket's path is the successor's too. A daemon
// stopped before the successor commits (a second rollout, a node drain)
// used to unlink it, and the successor served an API nobody could reach.
func TestStopDuringHandoverKeepsSocketPath(t *testing.T) {
	d, sock, stop := sharedDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, sock)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	defer tk.Abort()
	ln := tk.Listener(RoleControl)
	if ln == nil {
		t.Fatal("the control socket was not offered")
	}
	if !d.ControlSocketGivenAway() {
		t.Error("ControlSocketGivenAway = false after the offer")
	}
	stop() // SIGTERM to the old daemon before "commit"
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the control socket's path is gone after the old daemon stopped mid-hand-over: %v", err)
	}
	// The successor's inherited socket answers on that path.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "successor") })}
	go srv.Serve(ln)
	defer srv.Close()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://nsproxy/v1/healthz")
	if err != nil {
		t.Fatalf("the successor's control socket: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "successor" {
		t.Fatalf("answer %q", b)
	}
}

// TestAbortedHandoverReplaysRecords (review finding): a hook that met a 503
// during the window wrote its record and went on; when the successor fails
// the old daemon must take that record, or the container stays unexposed
// until the next restart.
func TestAbortedHandoverReplaysRecords(t *testing.T) {
	ns := testns.New(t, "hoab")
	dir := t.TempDir()
	d, sock, _ := sharedDaemon(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, sock)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "in-the-window", IfName: "eth0"},
		Netns: filepath.Join("/var/run/netns", ns), IPs: []string{"10.99.0.2/24"}}
	if err := hooks.WriteRecord(dir, a); err != nil {
		t.Fatal(err)
	}
	tk.Abort() // the successor died before committing
	waitFor(t, "the record written during the hand-over applied", func() error {
		for _, x := range d.attachments() {
			if x.ContainerID == a.ContainerID {
				return nil
			}
		}
		return os.ErrNotExist
	})
}

// TestReplayDropsGoneUnrecordedAttachments (review finding): an OCI
// attachment without a record is kept at replay (an older hook wrote
// none), but only while its namespace file exists: a hook whose DELETE met
// a 503 removed both, and the attachment would hold its host ports.
func TestReplayDropsGoneUnrecordedAttachments(t *testing.T) {
	ns := testns.New(t, "rpg")
	d := &Daemon{opt: Options{AttachmentDir: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	st := State{Attachments: []api.Attachment{
		{AttachmentKey: api.AttachmentKey{ContainerID: "alive", IfName: "oci"}, Source: hooks.SourceOCI,
			Netns: filepath.Join("/var/run/netns", ns)},
		{AttachmentKey: api.AttachmentKey{ContainerID: "stopped", IfName: "oci"}, Source: hooks.SourceOCI,
			Netns: filepath.Join("/var/run/netns", ns+"-gone")},
	}}
	got := d.replay(st)
	if len(got.Attachments) != 1 || got.Attachments[0].ContainerID != "alive" {
		t.Fatalf("replay kept %+v, want only the attachment whose namespace exists", got.Attachments)
	}
}
