package cniplugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/nsproxy/nsproxy/cniplugin"
	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar"
)

// TestReviewStatusMatchesNonStrictAdd: the spec's STATUS says whether the
// plugin can service ADD requests. Without "strict", ADD succeeds while
// the daemon is down (the record is replayed later), so STATUS must
// succeed too; a STATUS error makes CRI runtimes (CRI-O's ocicni,
// containerd's go-cni) report the node's network as not ready, which
// stops every pod start on the node although ADD would work.
func TestReviewStatusMatchesNonStrictAdd(t *testing.T) {
	e := newEnv(t)
	e.d.stop()
	a := e.args(e.conf("1.1.0", withPorts(portMappings)))
	if err := e.p.Add(a); err != nil {
		t.Fatalf("ADD with the daemon down (not strict): %v", err)
	}
	st := e.args(e.conf("1.1.0", map[string]any{"prevResult": nil}))
	if err := e.p.Status(st); err != nil {
		t.Errorf("STATUS fails (code %d: %v) while ADD under the same conditions succeeds", code(err), err)
	}
}

// reviewDaemon runs the real daemon in this process with its control
// socket at sock, attachment records in recs and its state in state;
// stop ends it (idempotent).
func reviewDaemon(t *testing.T, sock, recs, state string) (stop func()) {
	t.Helper()
	d, err := sidecar.New(sidecar.Options{StateFile: state, AttachmentDir: recs, DrainTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sidecar.ListenControl(sidecar.ControlOptions{Socket: sock, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran, served := make(chan error, 1), make(chan struct{})
	go func() { ran <- d.Run(ctx, nil) }()
	go func() { d.ServeControl(ctx, ln, -1); close(served) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-served
		if err := <-ran; err != nil {
			t.Errorf("daemon: %v", err)
		}
		os.Remove(sock)
	})
	t.Cleanup(stop)
	c := hooks.NewClient(sock)
	for i := 0; c.Ready(context.Background()) != nil; i++ {
		if i == 100 {
			t.Fatal("daemon not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stop
}

// TestReviewGivenNameChangesAtRestart: two containers whose nameTemplate
// gives the same name ("web": e.g. {{.PodName}} of two podman networks'
// containers, or a pod's second sandbox) are registered under "web" and
// "web-<hash>". The records the plugin wrote hold the requested name only
// and the daemon keeps CNI attachments nowhere else, so a daemon restart
// gives the names again in the order of the record files: "web" now names
// the other container's namespace, and every frontend, backend or manifest
// that refers to "web" reaches the wrong container. README: "Names once
// given stay through updates, restarts and reloads".
func TestReviewGivenNameChangesAtRestart(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	sock, recs, state := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "attachments"), filepath.Join(dir, "state.json")
	nsFirst := testns.Add(t, fmt.Sprintf("rvk%dz", os.Getpid()%10000))
	nsSecond := testns.Add(t, fmt.Sprintf("rvk%da", os.Getpid()%10000))
	stop := reviewDaemon(t, sock, recs, state)

	p := &cniplugin.Plugin{Stdout: io.Discard, Stderr: io.Discard, Timeout: 5 * time.Second}
	conf := func() []byte {
		b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "rvknet", "type": "nsproxy-cni",
			"socket": sock, "attachmentDir": recs, "nameTemplate": "web", "prevResult": prevResult("1.1.0")})
		return b
	}
	// Registered first, but its record file sorts last.
	first := &skel.CmdArgs{ContainerID: "zzz-first", IfName: "eth0", Netns: "/var/run/netns/" + nsFirst, StdinData: conf()}
	second := &skel.CmdArgs{ContainerID: "aaa-second", IfName: "eth0", Netns: "/var/run/netns/" + nsSecond, StdinData: conf()}
	for _, a := range []*skel.CmdArgs{first, second} {
		if err := p.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	c := hooks.NewClient(sock)
	name := func(a *skel.CmdArgs) string {
		got, err := c.Attachment(context.Background(), key(a))
		if err != nil {
			t.Fatal(err)
		}
		return got.Name
	}
	before := name(first)
	if before != "web" {
		t.Fatalf("the first container was given %q, want web", before)
	}
	stop()
	reviewDaemon(t, sock, recs, state)
	if after := name(first); after != before {
		t.Errorf("after a daemon restart the first container's namespace is %q (was %q); %q is now %s's (%s)",
			after, before, before, second.ContainerID, nsSecond)
	}
}
