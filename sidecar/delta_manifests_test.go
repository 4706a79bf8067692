package sidecar

// Review 6 of the attachment fast path under tenant manifests (f8e9c32):
// sequences where the fast path and a full plan of the same state
// disagree, or where the fast path leaves wrong state. Ports 23000-23199,
// namespaces rz*.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// r6Daemon is a started daemon on st with an attachment directory (the
// fast path needs one), files listening on 127.0.0.1:<port>.
func r6Daemon(t *testing.T, port int, st State) *Daemon {
	t.Helper()
	d := newRestoreDaemon(t, restoreCfg(fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)), st, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}

func r6PM(port int) api.PortMapping {
	return api.PortMapping{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80, Protocol: "tcp"}
}

// A Tenant applied through the manifest documents API (applyManifests, as
// `nsproxy apply -f` does) whose static namespace is the name an attachment
// holds: ApplyManifests gives the attachment another name, applyManifests
// (and the manifest directory) does not. The full plan then registers the
// attachment over the tenant's namespace; a fast DEL of the attachment
// unregisters the name, and the tenant's namespace is gone from the
// registry until the next full plan (fast writes under manifests are new
// in f8e9c32).
func TestReview6ManifestDocsStaticNameOfAttachment(t *testing.T) {
	ns, static := testns.New(t, "rzs"), testns.New(t, "rzd")
	d := r6Daemon(t, 23000, State{})
	a := attachmentIn("s0", ns, nil)
	a.Name = static
	a.PortMappings = []api.PortMapping{r6PM(23002)}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatal(err)
	}
	doc := `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  namespaces:
    - name: ` + static + "\n"
	if _, err := d.applyManifests(access{all: true, who: "root"}, manifestReq("t.yaml", doc), opApply); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the apply: %s", msg)
	}
	d.mu.Lock()
	e := d.registered[static]
	d.mu.Unlock()
	if e.Source != SourceManifest || e.Tenant != "acme" {
		t.Errorf("after the apply, %s is registered as %s of tenant %s; want the static namespace of tenant acme", static, e.Source, e.Tenant)
	}
	plans := d.plans
	if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
		t.Fatal(err)
	}
	t.Logf("DEL took the fast path: %v", d.plans == plans)
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the DEL: %s", msg)
	}
	if _, err := d.reg.Get(static); err != nil {
		t.Errorf("after the DEL, tenant acme's static namespace %s is not in the registry: %v", static, err)
	}
}

// ReplayAttachments (after a hand-over, aborted or taken over) replaces
// the CNI attachments with the plugin's records, which hold the name each
// asked for, not the one the daemon gave, and plans without assignNames:
// two containers that asked for the same name both hold it. The fast
// path's indexes are built from that state: a DEL of one unregisters the
// name the other still uses.
func TestReview6ReplayKeepsGivenNames(t *testing.T) {
	nss := []string{testns.New(t, "rzr0"), testns.New(t, "rzr1")}
	d := r6Daemon(t, 23010, State{})
	var keys []api.AttachmentKey
	for i := 0; i < 2; i++ {
		a := attachmentIn(fmt.Sprintf("r%d", i), nss[i], nil)
		a.Name = "rzweb"
		a.PortMappings = []api.PortMapping{r6PM(23012 + i)}
		if err := hooks.WriteRecord(d.opt.AttachmentDir, a); err != nil {
			t.Fatal(err)
		}
		if _, err := d.PutAttachment(a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.AttachmentKey)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Fatalf("before the replay: %s", msg)
	}
	if err := d.ReplayAttachments(); err != nil {
		t.Fatal(err)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the replay: %s", msg)
	}
	plans := d.plans
	if err := d.DeleteAttachment(keys[1]); err != nil {
		t.Fatal(err)
	}
	t.Logf("DEL took the fast path: %v", d.plans == plans)
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after a DEL: %s", msg)
	}
	d.mu.Lock()
	name := d.attachmentNameLocked(keys[0])
	d.mu.Unlock()
	if _, err := d.reg.Get(name); err != nil {
		t.Errorf("r0 is live, yet its namespace %s is not in the registry: %v", name, err)
	}
}

// r6KeyWithPreferred is the first key r<prefix><n>/eth0 whose preferred
// port of rule in lo..hi is port.
func r6KeyWithPreferred(prefix, rule string, lo, hi, port int) string {
	for n := 0; ; n++ {
		id := fmt.Sprintf("%s%d", prefix, n)
		if preferredPort(api.AttachmentKey{ContainerID: id, IfName: "eth0"}, rule, lo, hi) == port {
			return id
		}
	}
}

// A DEL of an attachment whose range port is an allocation (State.Ports)
// is planned fully (fastDelete steps aside), but that plan still reads the
// old State.Ports: the port stays reserved for the container that left,
// and a container left out because the range was full stays left out. A
// full plan of the state committed says the container gets the port: the
// daemon's state is not what a full plan of it gives (the next write of
// any kind moves it). TestFastPathAgreesWithPlanManifests never fills its
// range: 6 of its 24 attachments are tenant tb's, for 10 ports.
func TestReview6DeletedAllocationFreesItsPort(t *testing.T) {
	const lo, hi = 23022, 23023
	tb := tenant("tb", nil, manifest.Selector{PodNamespace: "team-b"})
	st := State{Manifests: manifest.Set{Tenants: []manifest.Tenant{tb},
		Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "ranged", Tenant: "tb"}, Spec: manifest.ExposureSpec{
			Select: manifest.Selector{PodNamespace: "team-b"}, ContainerPort: 8081, HostAddr: "127.0.0.1",
			PortRange: fmt.Sprintf("%d-%d", lo, hi)}}}}}
	d := r6Daemon(t, 23020, st)
	ids := []string{r6KeyWithPreferred("ra", "ranged", lo, hi, lo), r6KeyWithPreferred("rb", "ranged", lo, hi, lo), "rc"}
	var keys []api.AttachmentKey
	for i, id := range ids {
		a := attachmentIn(id, testns.New(t, fmt.Sprintf("rzd%d", i)), map[string]string{hooks.MetaPodNamespace: "team-b"})
		if _, err := d.PutAttachment(a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.AttachmentKey)
		if msg := fastAgreesWithPlan(d); msg != "" {
			t.Fatalf("after ADD %s: %s", id, msg)
		}
	}
	d.mu.Lock()
	ports, left := d.state.Ports, d.attStatus[keys[2]].problems
	d.mu.Unlock()
	t.Logf("allocations %v; %s: %v", ports, ids[2], left)
	if len(ports) != 1 || ports[0].AttachmentKey != keys[1] || len(left) != 1 {
		t.Fatalf("setup: want %s allocated %d and %s left out (range full)", ids[1], hi, ids[2])
	}
	if err := d.DeleteAttachment(keys[1]); err != nil {
		t.Fatal(err)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("after the DEL of %s: %s", ids[1], msg)
	}
}

// A new container whose own port mapping is on the address of its
// tenant's fixed-port Exposure rule: buildExposures validates the
// attachment's exposures together (config.Validate: "already bound"), so
// the plan fails and the CNI ADD is refused, where a port taken by
// another container or frontend only gives a problem ("an ADD is never
// refused"). The fast path steps aside on c.err, so both refuse.
func TestReview6MappingOnRulePortIsAProblem(t *testing.T) {
	ns := testns.New(t, "rzm")
	ta := tenant("ta", nil, manifest.Selector{PodNamespace: "team-a"})
	st := State{Manifests: manifest.Set{Tenants: []manifest.Tenant{ta},
		Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "fixed", Tenant: "ta"}, Spec: manifest.ExposureSpec{
			Select: manifest.Selector{PodNamespace: "team-a"}, ContainerPort: 8080, HostAddr: "127.0.0.1", HostPort: 23032}}}}}
	d := r6Daemon(t, 23030, st)
	a := attachmentIn("m0", ns, map[string]string{hooks.MetaPodNamespace: "team-a"})
	a.PortMappings = []api.PortMapping{r6PM(23032)}
	if _, err := d.PutAttachment(a); err != nil {
		t.Fatalf("ADD refused: %v", err)
	}
	v, _ := d.attachmentView(a.AttachmentKey)
	if len(v.Exposures) != 1 || len(v.Problems) != 1 {
		t.Errorf("exposures %v problems %v; want one exposed, the other a problem", v.Exposures, v.Problems)
	}
	if msg := fastAgreesWithPlan(d); msg != "" {
		t.Errorf("%s", msg)
	}
}

// What was checked and found right: random ADDs and DELs, several at a
// time (concurrent writes share a batch: the fast path applies a prefix,
// the rest is planned), between manifest applies that change limits and
// rules, dry-run and refused applies, under tenants with
// limits.maxExposedPorts and a tenant frontend (its bind counts as a
// listener), limits.maxListeners with a range rule and a Service, a
// default tenant with limits, overlapping selectors and a fixed rule two
// tenants' containers want. After each step the daemon agrees with a full
// plan (fastAgreesWithPlan) and so do the fast path's own indexes
// (tenant use, blocked, object names, live ports: r6Indexes). The range
// has more ports than its tenant's containers: with a range that fills,
// TestReview6DeletedAllocationFreesItsPort's defect shows here too.
func TestReview6FastPathBatchesAndManifestChanges(t *testing.T) {
	const seed = 1
	var nss []string
	for i := 0; i < 16; i++ {
		nss = append(nss, testns.New(t, fmt.Sprintf("rzf%02d", i)))
	}
	sel := func(podNS string) manifest.Selector { return manifest.Selector{PodNamespace: podNS} }
	set := func(v int) manifest.Set {
		ta, tb := tenant("ta", nil, sel("team-a")), tenant("tb", nil, sel("team-b"))
		ta.Spec.Limits.MaxExposedPorts = 3 + v%2
		tb.Spec.Limits.MaxListeners = 5 + v%3
		ta.Spec.Frontends = []api.Frontend{{Name: "ta-fe", Binds: []api.Bind{{Addr: "127.0.0.1:23150"}}, Backend: "ta-be"}}
		ta.Spec.Backends = []api.Backend{{Name: "ta-be", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:23151"}}}}
		s := manifest.Set{
			Tenants: []manifest.Tenant{ta, tb, tenant("tc", nil, sel("team-c")), tenant("tx", nil, sel("team-[cx]"))},
			Exposures: []manifest.Exposure{
				{Meta: manifest.Meta{Name: "fixed", Tenant: "ta"}, Spec: manifest.ExposureSpec{Select: sel("team-a"),
					ContainerPort: 8080, HostAddr: "127.0.0.1", HostPort: 23110}},
				{Meta: manifest.Meta{Name: "ranged", Tenant: "tb"}, Spec: manifest.ExposureSpec{Select: sel("team-b"),
					ContainerPort: 8081, HostAddr: "127.0.0.1", PortRange: "23120-23127"}},
			},
			Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "tb"}, Spec: manifest.ServiceSpec{
				Select: sel("team-b"), Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "127.0.0.1:23190"}}}},
		}
		if v%2 == 1 {
			def := tenant("default", nil)
			def.Spec.Limits.MaxExposedPorts = 5
			def.Spec.Limits.MaxListeners = 7
			s.Tenants = append(s.Tenants, def)
		}
		if v%4 == 3 {
			s.Exposures = append(s.Exposures, manifest.Exposure{Meta: manifest.Meta{Name: "tcx", Tenant: "tc"}, Spec: manifest.ExposureSpec{Select: sel("team-c"),
				ContainerPort: 8082, HostAddr: "127.0.0.1", HostPort: 23111}})
		}
		return s
	}
	d := r6Daemon(t, 23100, State{Manifests: set(0)})
	teams := []string{"team-a", "team-b", "team-c", "", "team-x"}
	attachment := func(i int) api.Attachment {
		pod := i / 2
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("z%02d", pod), IfName: "eth0"},
			Source: api.SourceCNI, Netns: "/var/run/netns/" + nss[i], IPs: []string{fmt.Sprintf("10.9.2.%d/24", i+2)}}
		if i%2 == 1 {
			a.IfName = "net1"
		}
		team := teams[pod%5]
		if team != "" {
			a.Metadata = map[string]string{hooks.MetaPodNamespace: team}
		}
		if i%6 == 3 {
			a.Name = "web"
		}
		a.PortMappings = []api.PortMapping{{HostPort: 23130 + i%5, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
		if i%4 == 0 {
			a.PortMappings = append(a.PortMappings, api.PortMapping{HostPort: 23111 + i%3, ContainerPort: 81, HostIP: "127.0.0.1"})
		}
		return a
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 77))
	fast, writes := 0, 0
	for step := 0; step < 200; step++ {
		plans := d.plans
		var what string
		switch r := rng.IntN(30); {
		case r < 26:
			n := 1 + rng.IntN(3)
			var wg sync.WaitGroup
			for k := 0; k < n; k++ {
				i := rng.IntN(16)
				a := attachment(i)
				put := rng.IntN(10) < 6
				what += fmt.Sprintf(" %v:%d", put, i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if put {
						_, err = d.PutAttachment(a)
					} else {
						err = d.DeleteAttachment(a.AttachmentKey)
					}
					if err != nil {
						t.Errorf("step %d: %v", step, err)
					}
				}()
			}
			wg.Wait()
		case r < 28:
			v := rng.IntN(8)
			what = fmt.Sprintf("apply %d", v)
			if err := d.ApplyManifests(set(v), false); err != nil {
				t.Fatalf("apply: %v", err)
			}
		case r < 29:
			what = "dry"
			if err := d.ApplyManifests(set(rng.IntN(8)), true); err != nil {
				t.Fatalf("dry: %v", err)
			}
		default:
			what = "refused"
			bad := set(1)
			bad.Tenants = append(bad.Tenants, tenant("tbad", nil, manifest.Selector{Network: "["}))
			if err := d.ApplyManifests(bad, false); err == nil {
				t.Fatal("bad applied")
			}
		}
		writes++
		if d.plans == plans {
			fast++
		}
		if msg := fastAgreesWithPlan(d); msg != "" {
			t.Fatalf("step %d (%s): %s", step, what, msg)
		}
		if msg := r6Indexes(d); msg != "" {
			t.Fatalf("indexes step %d (%s): %s", step, what, msg)
		}
	}
	t.Logf("%d of %d writes took the fast path", fast, writes)
	if fast < writes/20 {
		t.Errorf("%d of %d writes took the fast path: the check above checked little", fast, writes)
	}
}

// r6Indexes compares the fast path's indexes with a full plan's of d's
// state ("" when they agree).
func r6Indexes(d *Daemon) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state.clone()
	p, err := d.dryPlan(d.file, st)
	if err != nil {
		return err.Error()
	}
	for k, v := range p.use {
		if w := d.fast.use[k]; (w == nil) != (*v == tenantCount{}) && (w == nil || *w != *v) {
			return fmt.Sprintf("use of %s: fast %+v, plan %+v", k, w, v)
		}
		if w := d.fast.use[k]; w != nil && *w != *v {
			return fmt.Sprintf("use of %s: fast %+v, plan %+v", k, *w, *v)
		}
	}
	for k, w := range d.fast.use {
		if v := p.use[k]; v == nil && *w != (tenantCount{}) {
			return fmt.Sprintf("use of %s: fast %+v, plan none", k, *w)
		}
	}
	if d.fast.blocked != p.blocked {
		return fmt.Sprintf("blocked: fast %d, plan %d", d.fast.blocked, p.blocked)
	}
	if len(d.fast.objNames) != len(p.objNames) {
		return fmt.Sprintf("objNames: fast %d, plan %d", len(d.fast.objNames), len(p.objNames))
	}
	for n := range p.objNames {
		if !d.fast.objNames[n] {
			return "objNames lacks " + n
		}
	}
	if d.live.Len() != p.binds.Len() {
		return fmt.Sprintf("live ports: fast %d, plan %d", d.live.Len(), p.binds.Len())
	}
	return ""
}
