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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// TestReviewReloadRenameRefuses: README "Reloads keep every listener whose
// bind line is unchanged, with its connections". A SIGHUP reload whose file
// only renames a frontend (same bind line, same backend) closes the
// listening socket and binds it again: connections are refused meanwhile.
func TestReviewReloadRenameRefuses(t *testing.T) {
	be := echoServer(t, "backend")
	cfg := func(name string) string {
		return fmt.Sprintf("frontend %s\n    bind 127.0.0.1:23140\n    default_backend app\nbackend app\n    server s1 127.0.0.1:%d\n", name, be)
	}
	td := startTestDaemon(t, cfg("web"), "")
	addr := "127.0.0.1:23140"
	waitFor(t, "daemon serves", func() error { _, err := askTag(addr); return err })
	var refused, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
				}
				continue
			}
			ok.Add(1)
			c.Close()
		}
	}()
	for i := range 10 {
		name := "web"
		if i%2 == 0 {
			name = "www"
		}
		mustWrite(t, td.d.opt.ConfigFiles[0], cfg(name))
		if err := td.d.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if refused.Load() > 0 {
		t.Errorf("10 reloads that only renamed the frontend: %d connections refused (%d accepted)", refused.Load(), ok.Load())
	}
}

// TestReviewReplayAfterHandoverSavesDirectoryDocs: the successor calls
// ReplayAttachments after every hand-over (and the old daemon after an
// aborted one). It saves the whole state, not what the state file holds
// (Daemon.saved): the --manifests directory's documents land in the state
// file as API documents. A file removed from the directory afterwards is
// deleted from the running daemon, but its document comes back from the
// state file at the next start.
func TestReviewReplayAfterHandoverSavesDirectoryDocs(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "a.yaml"), tenantDoc("rvua", 2000))
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, "frontend web\n    bind 127.0.0.1:23170\n    default_backend web\nbackend web\n    server s1 127.0.0.1:23171\n")
	opt := Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), ManifestDir: mdir,
		ManifestResync: time.Hour, AttachmentDir: filepath.Join(dir, "att"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	os.Mkdir(opt.AttachmentDir, 0o755)
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		stopDaemon(d)
		t.Fatal(err)
	}
	before := readFile(t, opt.StateFile)
	// What finishTakeover does once the old daemon stopped accepting.
	if err := d.ReplayAttachments(); err != nil {
		t.Fatal(err)
	}
	after := readFile(t, opt.StateFile)
	stopDaemon(d)
	if strings.Contains(after, "rvua") {
		t.Errorf("state file after the successor's replay holds the directory's Tenant rvua (before: %d bytes, no rvua: %v)",
			len(before), !strings.Contains(before, "rvua"))
	}
	// The operator removes the document; the next start should not have it.
	os.Remove(filepath.Join(mdir, "a.yaml"))
	d2, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer stopDaemon(d2)
	if err := d2.Start(); err != nil {
		t.Fatal(err)
	}
	if ts := tenantNames(d2.tenantViews(access{all: true, who: "root"})); slices.Contains(ts, "rvua") {
		t.Errorf("a.yaml removed from --manifests, yet after a restart tenant rvua is back: %v", ts)
	}
}

// TestReviewHandoverMovesContendedPort: "Live binds keep precedence ... a
// new container never moves a port from under its clients". Two containers
// map the same host port: the first (bbb) holds it, the later one (aaa)
// gets a problem. After a hand-over the successor plans from the records
// in file-name order with no live binds, and gives the port to aaa: the
// socket handed over now leads to the other container. The same for a
// name both asked for: the successor gives it to the other container.
func TestReviewHandoverMovesContendedPort(t *testing.T) {
	attDir := t.TempDir()
	nsB := testns.Add(t, fmt.Sprintf("rvu%dcb", os.Getpid()%10000))
	nsA := testns.Add(t, fmt.Sprintf("rvu%dca", os.Getpid()%10000))
	d, sock, _ := sharedDaemon(t, attDir)
	td := &testDaemon{t: t, d: d, socket: sock, http: unixClient(sock)}
	add := func(id, ns, ip string) api.Attachment {
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"}, Source: api.SourceCNI,
			Name: "rvuweb", Netns: filepath.Join("/var/run/netns", ns), IPs: []string{ip + "/24"},
			PortMappings: []api.PortMapping{{HostPort: 23195, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}}
		if err := hooks.WriteRecord(attDir, a); err != nil {
			t.Fatal(err)
		}
		var got api.Attachment
		if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
			t.Fatalf("POST %s: %d %+v", id, code, e)
		}
		return got
	}
	first := add("bbb", nsB, "10.77.2.2")
	second := add("aaa", nsA, "10.77.2.3")
	if len(first.Exposed) != 1 || len(second.Exposed) != 0 {
		t.Fatalf("before: bbb exposed %v, aaa exposed %v problems %v", first.Exposed, second.Exposed, second.Problems)
	}
	holder := func(x *Daemon) string {
		for _, a := range x.attachments() {
			st, _ := x.attachmentView(a.AttachmentKey)
			if len(st.Exposed) > 0 {
				return a.ContainerID
			}
		}
		return ""
	}
	if h := holder(d); h != "bbb" {
		t.Fatalf("old daemon: port held by %q", h)
	}
	named := func(x *Daemon) string {
		for _, a := range x.attachments() {
			if a.ContainerID == "bbb" {
				return x.attachmentName(a.AttachmentKey)
			}
		}
		return ""
	}
	if n := named(d); n != "rvuweb" {
		t.Fatalf("old daemon: bbb named %q", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, sock)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	b := successorOf(t, tk, d.opt.StateFile, attDir)
	if err := b.ReplayAttachments(); err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, bs := range b.Engine().Snapshot().Backends {
		for _, sv := range bs.Servers {
			servers = append(servers, sv.Addr)
		}
	}
	if h := holder(b); h != "bbb" {
		t.Errorf("after the hand-over host port 23195 belongs to %q, before to bbb; the successor's servers: %v", h, servers)
	}
	if n := named(b); n != "rvuweb" {
		t.Errorf("after the hand-over the name rvuweb (NETNS TLVs, namespace lookups) is no longer bbb's: bbb is %q", n)
	}
}

// TestReviewReloadDuringHandoverLost: while a successor takes over, the
// old daemon refuses API writes with "upgrade in progress ... retry", but a
// SIGHUP reload is applied and reported as done ("configuration reloaded",
// READY=1). The successor loaded the files before the edit, so after the
// commit the reload is silently gone: the new frontend is not served.
func TestReviewReloadDuringHandoverLost(t *testing.T) {
	be := echoServer(t, "backend")
	cfgA := fmt.Sprintf("frontend web\n    bind 127.0.0.1:23196\n    default_backend app\nbackend app\n    server s1 127.0.0.1:%d\n", be)
	cfgB := cfgA + "frontend extra\n    bind 127.0.0.1:23197\n    default_backend app\n"
	td := startTestDaemon(t, cfgA, "")
	waitFor(t, "old daemon serves", func() error { _, err := askTag("127.0.0.1:23196"); return err })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := BeginTakeover(ctx, td.socket)
	if err != nil || tk == nil {
		t.Fatalf("BeginTakeover: %v", err)
	}
	// The successor starts: it reads the files as they are now.
	b, err := New(Options{ConfigFiles: td.d.opt.ConfigFiles, StateFile: td.state, Inherited: tk.Inherited,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tk.Abort()
		t.Fatal(err)
	}
	defer stopDaemon(b)
	// The operator edits the files and sends SIGHUP to the running daemon.
	mustWrite(t, td.d.opt.ConfigFiles[0], cfgB)
	reloadErr := td.d.Reload()
	if err := b.Start(); err != nil {
		tk.Abort()
		t.Fatal(err)
	}
	if err := tk.Commit(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_, serveErr := askTag("127.0.0.1:23197")
	if reloadErr == nil && serveErr != nil {
		t.Errorf("SIGHUP during the hand-over was accepted (Reload returned nil) but after the commit frontend extra is not served: %v", serveErr)
	}
}
