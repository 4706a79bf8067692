package sidecar

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// TestFastPathAgreesWithPlan: after every write of a random sequence of
// ADDs and DELs (through the fast path where it applies, the full plan
// where it does not, and now and then another write that plans fully), a
// full plan of the daemon's state gives the same names, statuses
// (exposures, problems, tenants), running model (engine spec) and registry
// entries as the daemon holds. The sequence has what makes the fast path
// step aside: host ports two containers want, requested names that clash
// and one an API object uses, a pod on two networks (one kernel namespace),
// a CNI tenant, and containers in another tenant's API namespace.
//
// Without the shared ports and the namespaces of two tenants (the second
// run) most DELs take the fast path too.
func TestFastPathAgreesWithPlan(t *testing.T) {
	nsA, nsB, nsT := testns.New(t, "fa"), testns.New(t, "fb"), testns.New(t, "ft")
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("conflicts=%v", shared), func(t *testing.T) {
			fastAgreement(t, nsA, nsB, nsT, shared)
		})
	}
}

func fastAgreement(t *testing.T, nsA, nsB, nsT string, conflicts bool) {
	st := State{
		Namespaces: []api.Namespace{{Name: "apins", Path: "/var/run/netns/" + nsT, Tenant: "t2"}},
		Backends: []api.Backend{{Name: "apib", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:24410",
			Namespace: "named-ref"}}}},
	}
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:24400", "127.0.0.1:24401"), st, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 5000))
	attachment := func(i int) api.Attachment {
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("c%02d", i/2), IfName: "eth0"},
			Netns: "/var/run/netns/" + nsA, IPs: []string{fmt.Sprintf("10.9.0.%d/24", i+2)}}
		if i%2 == 1 { // the same pod on a second network
			a.IfName = "net1"
		}
		switch i % 7 {
		case 1:
			a.Netns = "/var/run/netns/" + nsB
		case 0, 3:
			a.Name = "web" // clashes: suffixed names
		case 4:
			a.Name = "named-ref" // an API backend's server uses the name
		case 5:
			a.Netns = "/var/run/netns/" + nsB
			if conflicts {
				a.Tenant = "t1"
			}
		case 6:
			if conflicts && i%3 == 0 {
				a.Netns = "/var/run/netns/" + nsT // the API namespace of tenant t2
			}
		}
		// Host ports from a small range: some are wanted twice.
		port := 24450 + i
		if conflicts {
			port = 24402 + i%6
		}
		a.PortMappings = []api.PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
		if i%5 == 0 {
			a.PortMappings = append(a.PortMappings, api.PortMapping{HostPort: 24420 + i, ContainerPort: 81, HostIP: "127.0.0.1"})
		}
		return a
	}
	fast, writes := randomWrites(t, d, rng, 300, attachment)
	t.Logf("%d of %d writes took the fast path", fast, writes)
	if want := writes / 10; fast < want || !conflicts && fast < writes/3 {
		t.Errorf("%d of %d writes took the fast path; want at least a tenth, a third without conflicts", fast, writes)
	}
}

// TestFastPathAgreesWithPlanManifests is the same check with tenant
// manifests applied: tenants chosen by selectors (one pair overlapping),
// a tenant with limits.maxExposedPorts and a fixed-port Exposure rule that
// every one of its containers wants, a tenant with limits.maxListeners, a
// port-range rule (4 ports for up to 6 containers: preferred ports
// taken, allocations, a full range) and a Service listener in each of its
// containers, next to the default tenant's port mappings. Before tenant
// manifests had the fast path, every write under them planned fully.
func TestFastPathAgreesWithPlanManifests(t *testing.T) {
	var nss []string
	for i := 0; i < 24; i++ {
		nss = append(nss, testns.New(t, fmt.Sprintf("fm%02d", i)))
	}
	sel := func(podNS string) []manifest.Selector { return []manifest.Selector{{PodNamespace: podNS}} }
	ta, tb := tenant("ta", nil, sel("team-a")...), tenant("tb", nil, sel("team-b")...)
	ta.Spec.Limits.MaxExposedPorts = 5
	tb.Spec.Limits.MaxListeners = 9
	st := State{Manifests: manifest.Set{
		Tenants: []manifest.Tenant{ta, tb, tenant("tc", nil, sel("team-c")...), tenant("tx", nil, sel("team-[cx]")...)},
		Exposures: []manifest.Exposure{
			{Meta: manifest.Meta{Name: "fixed", Tenant: "ta"}, Spec: manifest.ExposureSpec{Select: sel("team-a")[0],
				ContainerPort: 8080, HostAddr: "127.0.0.1", HostPort: 21210}},
			{Meta: manifest.Meta{Name: "ranged", Tenant: "tb"}, Spec: manifest.ExposureSpec{Select: sel("team-b")[0],
				ContainerPort: 8081, HostAddr: "127.0.0.1", PortRange: "21220-21223"}},
		},
		Services: []manifest.Service{{Meta: manifest.Meta{Name: "db", Tenant: "tb"}, Spec: manifest.ServiceSpec{
			Select: sel("team-b")[0], Listen: "127.0.0.1:5432", Target: manifest.Endpoint{Addr: "127.0.0.1:21290"}}}},
	}}
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:21200", "127.0.0.1:21201"), st, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	teams := []string{"team-a", "team-b", "team-c", ""}
	attachment := func(i int) api.Attachment {
		pod := i / 2
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("m%02d", pod), IfName: "eth0"},
			Source: api.SourceCNI, Netns: "/var/run/netns/" + nss[i], IPs: []string{fmt.Sprintf("10.9.1.%d/24", i+2)}}
		if i%2 == 1 {
			a.IfName = "net1"
		}
		team := teams[pod%4]
		if team == "team-a" && i%2 == 1 {
			a.Netns = "/var/run/netns/" + nss[i-1] // a pod of ta on two networks: one kernel namespace
		}
		if team != "" {
			a.Metadata = map[string]string{hooks.MetaPodNamespace: team}
		}
		if i%7 == 3 {
			a.Name = "web" // clashes: suffixed names
		}
		a.PortMappings = []api.PortMapping{{HostPort: 21300 + i%8, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
		if i%5 == 0 {
			a.PortMappings = append(a.PortMappings, api.PortMapping{HostPort: 21320 + i, ContainerPort: 81, HostIP: "127.0.0.1"})
		}
		return a
	}
	rng := rand.New(rand.NewPCG(17, 5001))
	fast, writes := randomWrites(t, d, rng, 400, attachment)
	t.Logf("%d of %d writes took the fast path", fast, writes)
	if fast < writes/5 {
		t.Errorf("%d of %d writes took the fast path under tenant manifests; want at least a fifth", fast, writes)
	}
}

// randomWrites makes steps random writes through d — ADDs and DELs of
// attachment(0..23), now and then another write that plans fully — and
// after each checks that a full plan agrees with what d holds. It returns
// how many writes went without a plan (the fast path, or nothing to do).
func randomWrites(t *testing.T, d *Daemon, rng *rand.Rand, steps int, attachment func(int) api.Attachment) (fast, writes int) {
	t.Helper()
	for step := 0; step < steps; step++ {
		i := rng.IntN(24)
		a := attachment(i)
		var err error
		plans := d.plans
		switch r := rng.IntN(20); {
		case r < 12:
			_, err = d.PutAttachment(a)
		case r < 19:
			err = d.DeleteAttachment(a.AttachmentKey)
		default: // another write: a full plan, indexes rebuilt
			err = d.mutate(func(*State) error { return nil })
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		writes++
		if d.plans == plans {
			fast++
		}
		if msg := fastAgreesWithPlan(d); msg != "" {
			t.Fatalf("step %d (attachment %d): %s", step, i, msg)
		}
	}
	return fast, writes
}

// fastAgreesWithPlan plans d's state fully and says how it differs from
// what d holds ("" when it does not).
func fastAgreesWithPlan(d *Daemon) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state.clone()
	if moved := assignNames(d.file, &st, givenNames(d.state)); len(moved) > 0 || !reflect.DeepEqual(givenNames(st), givenNames(d.state)) {
		return fmt.Sprintf("names: plan gives %v, daemon has %v", givenNames(st), givenNames(d.state))
	}
	p, err := d.dryPlan(d.file, st)
	if err != nil {
		return "full plan: " + err.Error()
	}
	portKey := func(pa PortAllocation) string { return fmt.Sprintf("%v/%s=%d", pa.AttachmentKey, pa.Rule, pa.Port) }
	if got, want := slices.Sorted(slices.Values(mapSlice(d.state.Ports, portKey))), slices.Sorted(slices.Values(mapSlice(p.ports, portKey))); !slices.Equal(got, want) {
		return fmt.Sprintf("port allocations %v, plan has %v", got, want)
	}
	if len(p.attStatus) != len(d.attStatus) {
		return fmt.Sprintf("%d statuses, plan has %d", len(d.attStatus), len(p.attStatus))
	}
	for k, want := range p.attStatus {
		got := d.attStatus[k]
		if !reflect.DeepEqual(leftOut(got), leftOut(want)) {
			return fmt.Sprintf("status of %v: %+v, plan has %+v", k, got, want)
		}
	}
	if got, want := specText(engineSpec(d.mergedLocked())), specText(engineSpec(p.merged)); got != want {
		return fmt.Sprintf("model:\n%s\nplan:\n%s", got, want)
	}
	var running []string
	for _, l := range d.engine.Listeners() {
		running = append(running, l.Frontend)
	}
	var planned []string
	for _, f := range p.merged.Frontends {
		planned = append(planned, f.Name)
	}
	slices.Sort(running)
	slices.Sort(planned)
	if !slices.Equal(running, planned) {
		return fmt.Sprintf("engine runs %v, plan has %v", running, planned)
	}
	entries, _ := d.runtimeEntries(st, p)
	for name := range entries {
		if d.fast.baseNS[name] {
			// Never the fast path's; the registry refuses it anyway while
			// an object names it (commit registers before SetNames).
			delete(entries, name)
		}
	}
	registered := maps.Clone(d.registered)
	maps.DeleteFunc(registered, func(name string, _ netns.Entry) bool { return d.fast.baseNS[name] })
	if len(entries) != len(registered) {
		return fmt.Sprintf("%d registered %v, plan has %d %v", len(registered), slices.Sorted(maps.Keys(registered)), len(entries), slices.Sorted(maps.Keys(entries)))
	}
	for name, want := range entries {
		if got, ok := registered[name]; !ok || !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("entry %s: %+v, plan has %+v", name, got, want)
		}
		if _, err := d.reg.Get(name); err != nil {
			return fmt.Sprintf("entry %s not in the registry: %v", name, err)
		}
	}
	for _, x := range p.merged.Frontends {
		for _, b := range x.Binds {
			if _, f, ok := d.live.Conflict(b); !ok || f.Name != x.Name {
				return fmt.Sprintf("bind %s of %s not held by it in the live binds", b.Addr, x.Name)
			}
		}
	}
	return ""
}

// specText is spec with its frontends and backends in a stable order.
func specText(spec proxy.Spec) string {
	var lines []string
	for _, f := range spec.Frontends {
		lines = append(lines, fmt.Sprintf("%+v", f))
	}
	for _, b := range spec.Backends {
		lines = append(lines, fmt.Sprintf("%+v", b))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestAttachmentChurnLeavesNothing: after n attachments came and went, the
// daemon's per-attachment maps and caches are empty (and were rebuilt at
// their new size), the registry and the engine hold only the files'
// objects. Memory given back to the OS is the churn benchmark's to show.
func TestAttachmentChurnLeavesNothing(t *testing.T) {
	ns := testns.New(t, "fl")
	d := newRestoreDaemon(t, restoreCfg("127.0.0.1:24430", "127.0.0.1:24431"), State{}, io.Discard)
	d.opt.AttachmentDir = t.TempDir()
	t.Cleanup(func() { stopDaemon(d) })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	regBefore, listenersBefore := d.reg.Count(), len(d.engine.Listeners())
	const n = shrinkFloor + 44
	var keys []api.AttachmentKey
	for i := 0; i < n; i++ {
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("churn%03d", i), IfName: "eth0"},
			Netns: "/var/run/netns/" + ns, PortMappings: []api.PortMapping{{HostPort: 24440 + i%100, ContainerPort: 80,
				HostIP: fmt.Sprintf("127.0.%d.1", 1+i/100)}}}
		if _, err := d.PutAttachment(a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.AttachmentKey)
	}
	d.mu.Lock()
	live, peak := len(d.state.Attachments), d.fast.peak
	d.mu.Unlock()
	if live != n || peak != n || len(d.engine.Listeners()) != listenersBefore+n {
		t.Fatalf("after %d ADDs: %d attachments, peak %d, %d listeners", n, live, peak, len(d.engine.Listeners()))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		if err := d.DeleteAttachment(k); err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for what, size := range map[string]int{"attachments": len(d.state.Attachments), "statuses": len(d.attStatus),
		"exposure cache": len(d.exposed.prev), "registered": len(d.registered), "builtFrom": len(d.builtFrom),
		"positions": len(d.fast.pos), "names": len(d.fast.names), "kernel namespaces": len(d.fast.idCount),
		"live ports beyond the files'": d.live.Len() - 1, "object names beyond the files'": len(d.fast.objNames) - 2,
		"registry entries": d.reg.Count() - regBefore, "listeners": len(d.engine.Listeners()) - listenersBefore} {
		if size != 0 {
			t.Errorf("after all DELs, %s: %d left", what, size)
		}
	}
	if d.fast.peak >= shrinkFloor {
		t.Errorf("peak %d after every attachment left: the maps were not rebuilt", d.fast.peak)
	}
	if !d.memory.armed && d.memory.freed.IsZero() {
		t.Error("no return of the freed heap to the OS asked for after every attachment left")
	}
	if got := d.mergedLocked(); len(got.Frontends) != 1 || len(got.Backends) != 1 {
		t.Errorf("model after all DELs: %d frontends, %d backends; want the files' 1 and 1", len(got.Frontends), len(got.Backends))
	}
	if _, err := d.reg.Get(attachmentNamespace(api.Attachment{AttachmentKey: keys[0]})); err == nil {
		t.Errorf("%v still in the registry", keys[0])
	}
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}

// leftOut is s with each problem of an exposure left out reduced to which
// exposure it is. Why it was left out may read differently in the next
// plan when more than one reason holds: the plan checks the port, the
// name and the tenant's limits in that order at the time it places the
// exposure, and one plan counts siblings placed in the same plan after it
// that the next counts before it (they are live then). Which exposures
// are left out, and everything else of the status, must be the same.
func leftOut(s attachmentStatus) attachmentStatus {
	s.problems = slices.Clone(s.problems)
	for i, p := range s.problems {
		label, ok := "", false
		for _, reason := range []string{" is already in use by another frontend or container; not exposed", ": name ",
			": tenant ", ": every port of "} {
			if j := strings.Index(p, reason); j > 0 {
				label, ok = p[:j], true
				break
			}
		}
		if !ok {
			continue
		}
		if rule, _, isRule := strings.Cut(label, ":"); isRule && (strings.HasPrefix(rule, "Exposure ") || strings.HasPrefix(rule, "Service ")) {
			label = rule // a range rule's port is the one it was tried on
		}
		s.problems[i] = "left out: " + label
	}
	return s
}

// TestRestoredModelGoesWithItsAttachments (issue 13): attachments restored
// from records at start and then deleted leave no model behind. The model
// the restore's full plan committed held every restored exposure's
// frontend and backend, and fast DELs only marked it stale, so after a
// node's containers left the daemon kept them all until the next full
// plan.
func TestRestoredModelGoesWithItsAttachments(t *testing.T) {
	ns := testns.New(t, "fl")
	dir := t.TempDir()
	const n = 300
	var keys []api.AttachmentKey
	for i := 0; i < n; i++ {
		a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: fmt.Sprintf("rest%03d", i), IfName: "eth0"},
			Netns: "/var/run/netns/" + ns, PortMappings: []hooks.PortMapping{{HostPort: 20500 + i%100, ContainerPort: 80,
				Protocol: "tcp", HostIP: fmt.Sprintf("127.0.%d.1", 11+i/100)}}}
		if err := hooks.WriteRecord(dir, a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.AttachmentKey)
	}
	cfgPath := filepath.Join(dir, "n.cfg")
	if err := os.WriteFile(cfgPath, []byte(restoreCfg("127.0.0.1:24432", "127.0.0.1:24433")), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startedDaemon(t, Options{ConfigFiles: []string{cfgPath}, AttachmentDir: dir})
	t.Cleanup(func() { stopDaemon(d) })
	d.mu.Lock()
	restored := len(d.state.Attachments)
	d.mu.Unlock()
	if restored != n {
		t.Fatalf("restored %d attachments, want %d", restored, n)
	}
	for _, k := range keys {
		if err := d.DeleteAttachment(k); err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.merged != nil && len(d.merged.Frontends) > 1 {
		t.Errorf("after every DEL the daemon still holds a model of %d frontends", len(d.merged.Frontends))
	}
	if got := d.mergedLocked(); len(got.Frontends) != 1 || len(got.Backends) != 1 {
		t.Errorf("model after all DELs: %d frontends, %d backends; want the files' 1 and 1", len(got.Frontends), len(got.Backends))
	}
}
