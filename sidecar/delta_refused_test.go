package sidecar

// Review findings on the attachment fast path (delta.go): a refused write
// must leave nothing the fast path reads, and fast DELs must fold what a
// full plan folds. Each test failed on the fast path as first merged.

import (
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// A manifest apply refused after plan's exposure pass leaves the exposure
// cache (d.exposed.prev) built for the refused manifests; fastDelete then
// removes binds by pointers d.live never held.
func TestRefusedApplyThenFastDeleteFreesThePort(t *testing.T) {
	ns := testns.New(t, "rc")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:23020", "127.0.0.1:23021"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	a := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	a.PortMappings = []api.PortMapping{{HostIP: "127.0.0.1", HostPort: 23022, ContainerPort: 80, Protocol: "tcp"}}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	ta := tenant("ta", nil, manifest.Selector{Network: "net-a"})
	ta.Spec.Backends = []api.Backend{{Name: "ta-be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:80", Namespace: "nope"}}}}
	if err := d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{ta}}, false); err == nil {
		t.Fatal("set refused by checkTenantRefs was applied")
	} else {
		t.Logf("refused as expected: %v", err)
	}
	plans := d.plans
	if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
		t.Fatal(err)
	}
	t.Logf("DEL took the fast path: %v", d.plans == plans)
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after DEL: %s", msg)
	}
	// The port is free again: a new container asking for it gets it.
	b := attachmentIn("c1", ns, nil)
	b.PortMappings = a.PortMappings
	got, err := d.PutAttachment(b)
	_ = got
	if err != nil {
		t.Fatal(err)
	}
	v, _ := d.attachmentView(b.AttachmentKey)
	if len(v.Exposures) != 1 {
		t.Errorf("port 23022 freed by the DEL, yet the next ADD: exposures %v problems %v", v.Exposures, v.Problems)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after ADD: %s", msg)
	}
}

// After a refused update of a, a fast DEL of a leaves a's listener open.
func TestRefusedUpdateThenFastDeleteClosesTheListener(t *testing.T) {
	ns := testns.New(t, "rg")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:23040", "127.0.0.1:23049"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	pm := func(ip string, port int) api.PortMapping {
		return api.PortMapping{HostIP: ip, HostPort: port, ContainerPort: 80, Protocol: "tcp"}
	}
	a := attachmentIn("a", ns, nil)
	a.PortMappings = []api.PortMapping{pm("127.0.0.1", 23041)}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	bad := a
	bad.PortMappings = []api.PortMapping{pm("127.0.0.1", 23044), pm("127.0.0.2", 23044)}
	if _, err := d.PutAttachment(bad); err == nil {
		t.Fatal("update with a duplicate exposure name accepted")
	}
	plans := d.plans
	if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
		t.Fatal(err)
	}
	t.Logf("DEL took the fast path: %v", d.plans == plans)
	for _, l := range d.engine.Listeners() {
		if l.Frontend != "web" {
			t.Errorf("after a's DEL the engine still listens for %s on %v", l.Frontend, l)
		}
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the DEL: %s", msg)
	}
	b := attachmentIn("b", ns, nil)
	b.PortMappings = []api.PortMapping{pm("127.0.0.1", 23041)}
	if _, err := d.PutAttachment(b); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.attachmentView(b.AttachmentKey); len(v.Exposures) != 1 {
		t.Errorf("23041 freed by a's DEL, yet b: exposures %v problems %v", v.Exposures, v.Problems)
	}
}

// A refused attachment update (its exposures do not validate) fails plan
// half-way through its exposure pass; the deferred exposed.done() keeps
// the half-built cache, which the fast path then reads as the truth.
func TestRefusedUpdateThenFastAddKeepsTheModel(t *testing.T) {
	ns := testns.New(t, "rf")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:23030", "127.0.0.1:23039"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	put := func(id string, pms ...api.PortMapping) error {
		a := attachmentIn(id, ns, nil)
		a.PortMappings = pms
		_, err := d.PutAttachment(a)
		return err
	}
	pm := func(ip string, port int) api.PortMapping {
		return api.PortMapping{HostIP: ip, HostPort: port, ContainerPort: 80, Protocol: "tcp"}
	}
	if err := put("a", pm("127.0.0.1", 23031)); err != nil {
		t.Fatal(err)
	}
	if err := put("b", pm("127.0.0.1", 23032)); err != nil {
		t.Fatal(err)
	}
	// Two mappings of one host port: one exposure name twice, refused.
	if err := put("a", pm("127.0.0.1", 23034), pm("127.0.0.2", 23034)); err == nil {
		t.Fatal("update with a duplicate exposure name accepted")
	} else {
		t.Logf("refused as expected: %v", err)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the refused update: %s", msg)
	}
	if err := put("c", pm("127.0.0.1", 23033)); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range d.mergedNow().Frontends {
		names[f.Name] = true
	}
	for _, want := range []string{"cni-a-eth0-23031", "cni-b-eth0-23032", "cni-c-eth0-23033"} {
		if !names[want] {
			t.Errorf("running model lacks %s (has %v)", want, names)
		}
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the next ADD: %s", msg)
	}
}

// Per-namespace counters of containers that left are folded at Apply
// (prune) or at a Snapshot: fast DELs never Apply.
func TestFastDeleteFoldsNamespaceCounters(t *testing.T) {
	ns := testns.New(t, "rn")
	testns.Exec(t, ns, "ip", "link", "set", "lo", "up")
	serveIn(t, ns, "127.0.0.1:23060", "hi")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:23050", "127.0.0.1:23059"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 5
	plans := d.plans
	for i := 0; i < n; i++ {
		a := attachmentIn(fmt.Sprintf("n%d", i), ns, nil)
		a.PortMappings = []api.PortMapping{{HostIP: "127.0.0.1", HostPort: 23061 + i, ContainerPort: 23060, Protocol: "tcp"}}
		if _, err := d.PutAttachment(a); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, fmt.Sprintf("127.0.0.1:%d", 23061+i), "hi")
		if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
			t.Fatal(err)
		}
	}
	counters := reflect.ValueOf(d.engine).Elem().FieldByName("ns").FieldByName("m").Len()
	t.Logf("%d plans for %d ADD+DEL; namespace counters held: %d", d.plans-plans, n, counters)
	if counters > 1 { // "default" (the client side) stays
		t.Errorf("after every container left, the engine holds counters of %d namespaces", counters)
	}
}

// A manifest apply that plan refuses leaves d.tenants at the refused
// set; the fast path must not give an ADD an owner from it.
func TestFastPutIgnoresRefusedManifests(t *testing.T) {
	ns := testns.New(t, "rv")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:23000", "127.0.0.1:23001"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	ta := tenant("ta", nil, manifest.Selector{Network: "net-a"})
	ta.Spec.Limits.MaxConnections = 1
	bad := tenant("tb", nil, manifest.Selector{Network: "["}) // invalid glob: the set is refused
	if err := d.ApplyManifests(manifest.Set{Tenants: []manifest.Tenant{ta, bad}}, false); err == nil {
		t.Fatal("invalid set applied")
	}
	a := attachmentIn("c0", ns, map[string]string{hooks.MetaNetwork: "net-a"})
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	v, _ := d.attachmentView(a.AttachmentKey)
	d.mu.Lock()
	e := d.registered[d.attachmentNameLocked(a.AttachmentKey)]
	d.mu.Unlock()
	if v.Owner != netns.DefaultTenant && v.Owner != "" || e.Tenant != netns.DefaultTenant {
		t.Errorf("no manifests applied, yet the ADD's owner is %q and its registry entry's tenant %q", v.Owner, e.Tenant)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("fast path and full plan disagree: %s", msg)
	}
	_ = api.Attachment{}
}

func (d *Daemon) attachmentNameLocked(k api.AttachmentKey) string {
	a, _ := d.attachmentLocked(k)
	return attachmentNamespace(a)
}
