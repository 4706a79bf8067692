package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
	"github.com/nsproxy/nsproxy/sidecar/api"
)

// rvcCfg listens in the control review's port range only.
const rvcCfg = `
frontend web
    bind 127.0.0.1:23100
    default_backend web
backend web
    server s1 127.0.0.1:23101
`

// TestReviewReplayKeepsDirectoryOutOfState: ReplayAttachments (run by
// every takeover after its commit, and by an aborted hand-over) writes the
// whole state, not saved(state): the --manifests directory's documents land
// in the state file as if applied through the API. A file removed from the
// directory afterwards comes back at the next start.
func TestReviewReplayKeepsDirectoryOutOfState(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	os.Mkdir(mdir, 0o755)
	mustWrite(t, filepath.Join(mdir, "gone.yaml"), tenantDoc("rvcgone", 2000))
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	state := filepath.Join(dir, "state.json")
	opt := Options{ConfigFiles: []string{cfg}, StateFile: state, ManifestDir: mdir,
		AttachmentDir: filepath.Join(dir, "attachments")}
	d := startedDaemon(t, opt)
	err := d.ReplayAttachments()
	stopDaemon(d)
	if err != nil {
		t.Fatal(err)
	}
	var saved State
	if err := json.Unmarshal([]byte(readFile(t, state)), &saved); err != nil {
		t.Fatal(err)
	}
	if refs := docRefs(saved.Manifests); len(refs) > 0 {
		t.Errorf("after ReplayAttachments the state file holds the directory's documents: %v", refs)
	}

	// The operator removes the tenant's file and restarts the daemon.
	os.Remove(filepath.Join(mdir, "gone.yaml"))
	d2 := startedDaemon(t, opt)
	defer stopDaemon(d2)
	names := tenantNames(d2.tenantViews(access{all: true, who: "root"}))
	if slices.Contains(names, "rvcgone") {
		t.Fatalf("tenant rvcgone, whose file was removed from %s, is back after a restart: tenants %v", mdir, names)
	}
}

// rvcNS makes a namespace of this review's prefix, deleted at cleanup.
func rvcNS(t *testing.T, tag string) string {
	t.Helper()
	return testns.Add(t, fmt.Sprintf("rvc%d%s", os.Getpid()%10000, tag))
}

// TestReviewAttachmentNameUsedByObjectOfOtherTenant: a CNI ADD whose
// requested name an API backend of the default tenant uses (a server in
// namespace "rvcweb") and whose config names tenant t1 is refused (400):
// the daemon gives it the name and then the tenant check refuses the
// backend. Names of attachments are meant to be given, never refused (a
// failed ADD leaks the other plugins' state).
func TestReviewAttachmentNameUsedByObjectOfOtherTenant(t *testing.T) {
	ns := rvcNS(t, "n")
	td := startTestDaemon(t, rvcCfg, "")
	if code, e := td.call("POST", "/v1/backends", api.Backend{Name: "rvcb", Servers: []api.Server{{Name: "s",
		Addr: "127.0.0.1:23102", Namespace: "rvcweb"}}}, nil); code != 201 {
		t.Fatalf("backend: %d %+v", code, e)
	}
	var got api.Attachment
	code, e := td.call("POST", "/v1/attachments", api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "rvc1", IfName: "eth0"},
		Netns: "/var/run/netns/" + ns, Name: "rvcweb", Tenant: "t1",
		PortMappings: []api.PortMapping{{HostPort: 23103, ContainerPort: 80, HostIP: "127.0.0.1"}}}, &got)
	if code >= 300 {
		t.Fatalf("ADD of tenant t1 asking for a name a default-tenant backend uses: %d %s %v", code, e.Error, e.Details)
	}
	t.Logf("given %s, problems %v", got.Name, got.Problems)
}

// TestReviewRecordRefusedByPlanStopsStart: a record the plugin left while
// the daemon was down (ADD succeeds then, the record is the durable copy)
// with one host port on two host addresses — a dual-stack localhost
// publish, -p 127.0.0.1:P:80 -p [::1]:P:80 — is an error of the whole plan
// that restore cannot blame on a saved object: Start fails, and the daemon
// does not start until someone deletes the record by hand.
func TestReviewRecordRefusedByPlanStopsStart(t *testing.T) {
	ns := rvcNS(t, "r")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	recs := filepath.Join(dir, "attachments")
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "rvc2", IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
		Source: api.SourceCNI, IPs: []string{"10.99.0.2/24"}, PortMappings: []api.PortMapping{
			{HostPort: 23111, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
			{HostPort: 23111, ContainerPort: 80, Protocol: "tcp", HostIP: "::1"}}}
	if err := hooks.WriteRecord(recs, a); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), AttachmentDir: recs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer stopDaemon(d)
	if err := d.Start(); err != nil {
		t.Fatalf("the daemon does not start because of one attachment record: %v", err)
	}
}

// TestReviewRecordDropsAPIObjectAtStart: the same clash as
// TestReviewAttachmentNameUsedByObjectOfOtherTenant, met at start: a
// container of tenant t1 started while the daemon was down (its record
// asks for "rvcweb"), and root's saved API backend names "rvcweb". Restore
// blames the backend and drops it from the state file for good: root's
// object is lost because a container started.
func TestReviewRecordDropsAPIObjectAtStart(t *testing.T) {
	ns := rvcNS(t, "d")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	state := filepath.Join(dir, "state.json")
	st := State{Backends: []api.Backend{{Name: "rvcb", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:23102", Namespace: "rvcweb"}}}}}
	if err := (&store{path: state}).save(st); err != nil {
		t.Fatal(err)
	}
	recs := filepath.Join(dir, "attachments")
	if err := hooks.WriteRecord(recs, api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "rvc3", IfName: "eth0"},
		Netns: "/var/run/netns/" + ns, Name: "rvcweb", Tenant: "t1", Source: api.SourceCNI}); err != nil {
		t.Fatal(err)
	}
	d := startedDaemon(t, Options{ConfigFiles: []string{cfg}, StateFile: state, AttachmentDir: recs})
	defer stopDaemon(d)
	var saved State
	if err := json.Unmarshal([]byte(readFile(t, state)), &saved); err != nil {
		t.Fatal(err)
	}
	if len(saved.Backends) != 1 {
		t.Fatalf("root's API backend rvcb was dropped from the state file at start: backends %+v; attachment name %q",
			saved.Backends, d.attachmentName(api.AttachmentKey{ContainerID: "rvc3", IfName: "eth0"}))
	}
}

// TestReviewTenantAccessSocketSlotsHeldByAnyUser: with --tenant-access the
// socket is mode 0666, and any local user may fill every connection slot
// with connections the listener never evicts: requests it pipelines and
// never reads the answers of (403s here) keep each connection "being
// answered" until the write timeout, and at the bound a new connection is
// closed at once. The CNI plugin's and the OCI hook's requests (root) are
// then closed unanswered: a non-strict ADD succeeds without registering.
func TestReviewTenantAccessSocketSlotsHeldByAnyUser(t *testing.T) {
	testns.RequireRoot(t)
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("python3 not installed")
	}
	const slots = 8
	_, sock, _ := servedDaemon(t, "rvcsock", false, ControlOptions{TenantAccess: true, MaxConns: slots})
	pipelineAs(t, python, sock, 65534, slots) // nobody

	c := hooks.NewClient(sock, hooks.WithTimeout(2*time.Second))
	var failed []string
	for i := 0; i < 5; i++ {
		if err := c.Ready(context.Background()); err != nil {
			failed = append(failed, err.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of 5 requests of root (the CNI plugin's client) failed while user nobody held the %d slots; first: %s",
			len(failed), slots, failed[0])
	}
}

// rvcTenantT1 is tenant t1 with a frontend and a server in the namespace
// of its own container "rvcweb" (an attachment's name, which a tenant's
// objects may use while the attachment is the tenant's).
const rvcTenantT1 = `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: t1
spec:
  frontends:
  - name: t1-web
    binds:
    - addr: 127.0.0.1:23105
      namespace: rvcweb
    backend: t1-app
  backends:
  - name: t1-app
    servers:
    - name: s1
      addr: 127.0.0.1:23106
      namespace: rvcweb
`

// TestReviewDelOfContainerATenantObjectUses: a tenant's frontend binds in
// its own container's namespace; the container ends (CNI DEL: the plugin
// removes the record, then the daemon's DELETE). The daemon refuses the
// DELETE (400: the tenant's objects would name a namespace of the default
// tenant), the plugin only logs it, and the attachment stays for good:
// its listeners, its registry entry and its namespace handle (which keeps
// the dead container's namespace alive). At the next start the record is
// gone, and restore drops the whole Tenant document instead.
func TestReviewDelOfContainerATenantObjectUses(t *testing.T) {
	ns := rvcNS(t, "t")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	recs := filepath.Join(dir, "attachments")
	opt := Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), AttachmentDir: recs}
	d := startedDaemon(t, opt)
	root := access{all: true, who: "root"}
	if _, err := d.applyManifests(root, manifestReq("t0.yaml", tenantDoc("t1", 2000)), opApply); err != nil {
		t.Fatal(err)
	}
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "rvc4", IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
		Name: "rvcweb", Tenant: "t1", Source: api.SourceCNI}
	if err := hooks.WriteRecord(recs, a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.applyManifests(root, manifestReq("t1.yaml", rvcTenantT1), opApply); err != nil {
		t.Fatalf("tenant t1's frontend in its container's namespace: %v", err)
	}
	// CNI DEL.
	hooks.RemoveRecord(recs, a.AttachmentKey)
	if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
		t.Errorf("DELETE of the ended container refused: %v", err)
	}
	if _, ok := d.attachmentView(a.AttachmentKey); ok {
		t.Errorf("the attachment of the ended container is still held")
	}
	stopDaemon(d)

	d2 := startedDaemon(t, opt)
	defer stopDaemon(d2)
	if names := tenantNames(d2.tenantViews(root)); !slices.Contains(names, "t1") {
		t.Errorf("after a restart tenant t1's document is gone: tenants %v", names)
	}
}

// TestReviewLateDeleteRemovesNewerRecord: a container restarted under the
// same key (podman restart: CNI DEL, then ADD) while the daemon is busy
// (its lock held longer than the hooks' timeout, as a large plan holds
// it). The plugin's DELETE times out (DEL succeeds anyway), its ADD writes
// the new record and its POST times out too (ADD succeeds: "the daemon
// picks the record up"). The daemon then serves the stale DELETE: it
// removes the attachment and also the record the later ADD wrote, so the
// running container is neither served nor ever replayed.
func TestReviewLateDeleteRemovesNewerRecord(t *testing.T) {
	ns := rvcNS(t, "l")
	d, sock, recs := servedDaemon(t, "rvclate", true, ControlOptions{})

	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "rvc5", IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
		Source: api.SourceCNI, PortMappings: []api.PortMapping{{HostPort: 23107, ContainerPort: 80, HostIP: "127.0.0.1"}}}
	hook := hooks.NewClient(sock, hooks.WithTimeout(300*time.Millisecond))
	if err := hooks.WriteRecord(recs, a); err != nil {
		t.Fatal(err)
	}
	if _, err := hook.PutAttachment(context.Background(), a); err != nil {
		t.Fatal(err)
	}

	d.mu.Lock() // a long plan
	// CNI DEL: record, then the daemon (times out).
	hooks.RemoveRecord(recs, a.AttachmentKey)
	if err := hook.DeleteAttachment(context.Background(), a.AttachmentKey); err == nil {
		d.mu.Unlock()
		t.Fatal("DELETE answered while the daemon was busy")
	}
	// CNI ADD of the restarted container: record, then the daemon (times out).
	if err := hooks.WriteRecord(recs, a); err != nil {
		d.mu.Unlock()
		t.Fatal(err)
	}
	if _, err := hook.PutAttachment(context.Background(), a); err == nil {
		d.mu.Unlock()
		t.Fatal("POST answered while the daemon was busy")
	}
	d.mu.Unlock()
	time.Sleep(500 * time.Millisecond) // the daemon serves both requests

	_, live := d.attachmentView(a.AttachmentKey)
	_, recErr := hooks.ReadRecord(recs, a.AttachmentKey)
	if recErr != nil {
		t.Fatalf("the record the last ADD wrote is gone (%v); attachment live: %v: the running container is lost for good", recErr, live)
	}
}

// TestReplaySkipsRecordRefusedByPlan: ReplayAttachments (a takeover's, an
// aborted hand-over's) drops a record the plan refuses on its own and
// applies the others; the record stays for the operator.
func TestReplaySkipsRecordRefusedByPlan(t *testing.T) {
	ns := testns.Add(t, fmt.Sprintf("fxc%dr", os.Getpid()%10000))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	recs := filepath.Join(dir, "attachments")
	d := startedDaemon(t, Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), AttachmentDir: recs})
	defer stopDaemon(d)
	bad := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "fxc1", IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
		Source: api.SourceCNI, PortMappings: []api.PortMapping{
			{HostPort: 24401, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
			{HostPort: 24401, ContainerPort: 80, Protocol: "tcp", HostIP: "::1"}}}
	good := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "fxc2", IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
		Source: api.SourceCNI, PortMappings: []api.PortMapping{{HostPort: 24402, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}}
	for _, a := range []api.Attachment{bad, good} {
		if err := hooks.WriteRecord(recs, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.ReplayAttachments(); err != nil {
		t.Fatalf("one refused record failed the replay: %v", err)
	}
	if _, ok := d.attachmentView(good.AttachmentKey); !ok {
		t.Errorf("the valid record was not replayed")
	}
	if _, ok := d.attachmentView(bad.AttachmentKey); ok {
		t.Errorf("the refused record is served")
	}
	if _, err := hooks.ReadRecord(recs, bad.AttachmentKey); err != nil {
		t.Errorf("the refused record was removed: %v", err)
	}
}

// fxcListening reports whether something listens on 127.0.0.1:port in ns.
func fxcListening(t *testing.T, ns string, port int) bool {
	return strings.Contains(testns.Exec(t, ns, "ss", "-ltnH"), fmt.Sprintf("127.0.0.1:%d ", port))
}

// TestTenantObjectsWaitForTheirContainer: a tenant's frontend binds in its
// container's namespace. The container ends: the DEL is served, the
// frontend waits for the name (and does not bind in the netns directory's
// namespace of that name, which is root's); the container comes back in a
// new namespace: the frontend listens there.
func TestTenantObjectsWaitForTheirContainer(t *testing.T) {
	pid := os.Getpid() % 10000
	c1 := testns.Add(t, fmt.Sprintf("fxc%dc1", pid))
	c2 := testns.Add(t, fmt.Sprintf("fxc%dc2", pid))
	rootNS := testns.Add(t, fmt.Sprintf("fxc%dwn", pid)) // root's namespace of the container's name
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	recs := filepath.Join(dir, "attachments")
	d := startedDaemon(t, Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json"), AttachmentDir: recs})
	defer stopDaemon(d)
	root := access{all: true, who: "root"}
	if _, err := d.applyManifests(root, manifestReq("t0.yaml", tenantDoc("t1", 2000)), opApply); err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("rvcweb", rootNS, "23105", "24410", "23106", "24411").Replace(rvcTenantT1)
	// A name no container of t1 held is not t1's to wait for.
	if _, err := d.applyManifests(root, manifestReq("t1.yaml", doc), opApply); err == nil {
		t.Fatalf("tenant t1's objects naming %s, which no container of t1 holds, were accepted", rootNS)
	}
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "fxc4", IfName: "eth0"}, Netns: "/var/run/netns/" + c1,
		Name: rootNS, Tenant: "t1", Source: api.SourceCNI}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.applyManifests(root, manifestReq("t1.yaml", doc), opApply); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "t1-web listening in the container's namespace", func() error {
		if !fxcListening(t, c1, 24410) {
			return fmt.Errorf("not listening in %s", c1)
		}
		return nil
	})
	if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
		t.Fatalf("DEL refused: %v", err)
	}
	testwait.For(t, 5*time.Second, "t1-web closed with its container", func() error {
		if fxcListening(t, c1, 24410) {
			return fmt.Errorf("still listening in %s", c1)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if fxcListening(t, rootNS, 24410) {
		t.Fatalf("tenant t1's frontend listens in %s, the netns directory's namespace of its container's name", rootNS)
	}
	a.Netns = "/var/run/netns/" + c2
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	if got := d.attachmentName(a.AttachmentKey); got != rootNS {
		t.Fatalf("the container came back as %q, not %q", got, rootNS)
	}
	testwait.For(t, 5*time.Second, "t1-web listening in the container's new namespace", func() error {
		if !fxcListening(t, c2, 24410) {
			return fmt.Errorf("not listening in %s", c2)
		}
		return nil
	})
}

// TestTenantAccessOneUserCannotLockOutAnother: with --tenant-access, one
// local user pipelining requests it never reads on as many connections as
// it can open holds at most its uid's share: another unprivileged user is
// still answered (a 403 here).
func TestTenantAccessOneUserCannotLockOutAnother(t *testing.T) {
	testns.RequireRoot(t)
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("python3 not installed")
	}
	const slots = 16
	_, sock, _ := servedDaemon(t, "fxcsock", false, ControlOptions{TenantAccess: true, MaxConns: slots})
	pipelineAs(t, python, sock, 65534, slots*2)

	for i := 0; i < 3; i++ {
		other := exec.Command(python, "-c", fmt.Sprintf(`
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
s.connect(%q)
s.sendall(b"GET /v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
print(s.recv(64).decode().split("\r\n")[0])
`, sock))
		other.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65533, Gid: 65533}}
		got, err := other.CombinedOutput()
		if err != nil || !strings.Contains(string(got), " 403 ") {
			t.Fatalf("another user's request while uid 65534 pipelines on %d connections: %q %v", slots*2, got, err)
		}
	}
}

// TestLateAttachmentWritesYieldToRecords: writes whose clients gave up
// while the daemon's lock was held are served later; the records (written
// before a POST, removed before a DELETE) say which write came last.
func TestLateAttachmentWritesYieldToRecords(t *testing.T) {
	ns := testns.Add(t, fmt.Sprintf("fxc%dlw", os.Getpid()%10000))
	d, sock, recs := servedDaemon(t, "fxclate", true, ControlOptions{})
	hook := hooks.NewClient(sock, hooks.WithTimeout(300*time.Millisecond))
	att := func(id string, port int) api.Attachment {
		return api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"}, Netns: "/var/run/netns/" + ns,
			Source: api.SourceCNI, PortMappings: []api.PortMapping{{HostPort: port, ContainerPort: 80, HostIP: "127.0.0.1"}}}
	}
	add := func(a api.Attachment, late bool) {
		t.Helper()
		if err := hooks.WriteRecord(recs, a); err != nil {
			t.Fatal(err)
		}
		if _, err := hook.PutAttachment(context.Background(), a); (err == nil) == late {
			t.Fatalf("ADD of %s (late %v): %v", a.ContainerID, late, err)
		}
	}
	del := func(a api.Attachment, late bool) {
		t.Helper()
		hooks.RemoveRecord(recs, a.AttachmentKey)
		if err := hook.DeleteAttachment(context.Background(), a.AttachmentKey); (err == nil) == late {
			t.Fatalf("DEL of %s (late %v): %v", a.ContainerID, late, err)
		}
	}
	live := func(a api.Attachment) bool { _, ok := d.attachmentView(a.AttachmentKey); return ok }

	// A late DEL that no ADD followed still removes the attachment.
	a := att("fxcl1", 24420)
	add(a, false)
	d.mu.Lock()
	del(a, true)
	d.mu.Unlock()
	testwait.For(t, 3*time.Second, "the late DEL served", func() error {
		if live(a) {
			return fmt.Errorf("%s still live", a.ContainerID)
		}
		return nil
	})

	// A late ADD that a DEL followed does not bring the container back.
	b := att("fxcl2", 24421)
	d.mu.Lock()
	add(b, true)
	del(b, true)
	d.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	if live(b) {
		t.Errorf("a late ADD served after its container's DEL brought %s back", b.ContainerID)
	}

	// A late DEL that an ADD followed (podman restart) leaves the new
	// container served and its record in place.
	c := att("fxcl3", 24422)
	add(c, false)
	d.mu.Lock()
	del(c, true)
	add(c, true)
	d.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	if !live(c) {
		t.Errorf("the restarted container %s is not served", c.ContainerID)
	}
	if _, err := hooks.ReadRecord(recs, c.AttachmentKey); err != nil {
		t.Errorf("the restarted container's record: %v", err)
	}
}

// servedDaemon starts a daemon on rvcCfg with its state (and, records
// true, its attachment records) in a new world-searchable directory, and
// serves its control socket there with copt (Socket set here): what a
// hook or another user reaches. It returns the daemon, the socket and the
// record directory.
func servedDaemon(t *testing.T, prefix string, records bool, copt ControlOptions) (d *Daemon, sock, recs string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "n.cfg")
	mustWrite(t, cfg, rvcCfg)
	opt := Options{ConfigFiles: []string{cfg}, StateFile: filepath.Join(dir, "state.json")}
	if records {
		recs = filepath.Join(dir, "attachments")
		opt.AttachmentDir = recs
	}
	d = startedDaemon(t, opt)
	t.Cleanup(func() { stopDaemon(d) })
	copt.Socket, copt.Group = filepath.Join(dir, "ctl.sock"), -1
	ln, err := ListenControl(copt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { d.ServeControl(ctx, ln, -1); close(served) }()
	t.Cleanup(func() { cancel(); <-served })
	return d, copt.Socket, recs
}

// pipelineAs has uid open conns connections to sock, each with thousands
// of pipelined requests whose answers it never reads, and returns once the
// daemon has answered until every socket buffer is full.
func pipelineAs(t *testing.T, python, sock string, uid uint32, conns int) {
	t.Helper()
	cmd := exec.Command(python, "-c", fmt.Sprintf(`
import socket, time
req = b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n" * 6000
conns = []
for i in range(%d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(%q)
    s.setblocking(False)
    try:
        s.send(req)
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass  # full, or a slot over the peer's share, closed at once by the daemon
    conns.append(s)
print("ready", flush=True)
time.sleep(20)
`, conns, sock))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("uid %d's client: %q %v", uid, line, err)
	}
	time.Sleep(time.Second) // the daemon answers until every socket buffer is full
}
