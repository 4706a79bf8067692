package sidecar

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// BenchmarkRestore: the time from a daemon process having its state file
// to its frontend answering, for a state of n API servers (the shape of
// issue 9's report: 500 / 1,000 / 2,000 servers took 1.3 / 4.9 / 22.8 s).
// Each iteration is New (read the files and the state) + Start (restore,
// plan, apply) + one connection through the restored frontend. Exposed
// ports are down for that long after every restart.
//
//	go test -run '^$' -bench BenchmarkRestore -benchtime 3x ./sidecar/
func BenchmarkRestore(b *testing.B) {
	testns.RequireRoot(b)
	for _, n := range []int{500, 1000, 2000, 10000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			benchRestore(b, n)
		})
	}
	// Attachment records replayed at start, all in one namespace: each is
	// a registry entry with its own handle.
	ns := testns.New(b, "br")
	b.Run("attachments-hostport=5000", func(b *testing.B) { benchRestoreExposed(b, ns, 5000) })
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("attachments=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < n; i++ {
				a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: fmt.Sprintf("rec%d", i), IfName: "eth0"},
					Netns: "/var/run/netns/" + ns}
				if err := hooks.WriteRecord(dir, a); err != nil {
					b.Fatal(err)
				}
			}
			cfgPath := filepath.Join(dir, "n.cfg")
			os.WriteFile(cfgPath, []byte(restoreCfg("127.0.0.1:19390", "127.0.0.1:19391")), 0o644)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := startedDaemon(b, Options{ConfigFiles: []string{cfgPath}, AttachmentDir: dir})
				if got := len(d.state.Attachments); got != n {
					b.Fatalf("replayed %d attachments, want %d", got, n)
				}
				b.StopTimer()
				stopDaemon(d)
				b.StartTimer()
			}
		})
	}
}

// benchRestoreExposed: n attachment records, each with a host port (on
// 127.0.X.1, ports 20500-20599), replayed at start, until every listener
// is open and a connection through the last one reaches the server in the
// namespace: issue 13's restart target (5,000 serving within 2 s).
func benchRestoreExposed(b *testing.B, ns string, n int) {
	h, err := netns.OpenPath("/var/run/netns/"+ns, ns)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ln, err := h.Listen(netip.MustParseAddrPort("127.0.0.1:8080"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	dir := b.TempDir()
	var last string
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("127.0.%d.1", 1+i/100)
		a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: fmt.Sprintf("rec%d", i), IfName: "eth0"},
			Netns: "/var/run/netns/" + ns, PortMappings: []hooks.PortMapping{{HostPort: 20500 + i%100, ContainerPort: 8080,
				Protocol: "tcp", HostIP: host}}}
		if err := hooks.WriteRecord(dir, a); err != nil {
			b.Fatal(err)
		}
		last = fmt.Sprintf("%s:%d", host, 20500+i%100)
	}
	cfgPath := filepath.Join(dir, "n.cfg")
	os.WriteFile(cfgPath, []byte(restoreCfg("127.0.0.1:19390", "127.0.0.1:19391")), 0o644)
	var started time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d := startedDaemon(b, Options{ConfigFiles: []string{cfgPath}, AttachmentDir: dir})
		started += time.Since(t0)
		for up := 0; up < n; {
			up = 0
			for _, l := range d.engine.Listeners() {
				if l.Listening && l.Bind.NoTakeover {
					up++
				}
			}
			if up < n {
				time.Sleep(time.Millisecond)
			}
		}
		if err := answers(last, "ok\n", 5*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stopDaemon(d)
		b.StartTimer()
	}
	b.ReportMetric(float64(started.Milliseconds())/float64(b.N), "start-ms/op") // New + Start returned
}

func benchRestore(b *testing.B, n int) {
	srv := fmt.Sprintf("127.0.0.1:%d", echoServer(b, "ok"))
	front := "127.0.0.1:19390"
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "n.cfg")
	os.WriteFile(cfgPath, []byte(restoreCfg(front, srv)), 0o644)
	stateFile := filepath.Join(dir, "state.json")
	if err := (&store{path: stateFile}).save(State{Servers: apiServers(n, srv)}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := startedDaemon(b, Options{ConfigFiles: []string{cfgPath}, StateFile: stateFile})
		if got := len(d.state.Servers); got != n {
			b.Fatalf("restored %d servers, want %d", got, n)
		}
		if err := answers(front, "ok\n", 5*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stopDaemon(d)
		b.StartTimer()
	}
}

// startedDaemon makes and starts a daemon with opt, silent unless opt
// brings a logger, or fails tb. The caller stops it (stopDaemon).
func startedDaemon(tb testing.TB, opt Options) *Daemon {
	tb.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New(opt)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(); err != nil {
		stopDaemon(d)
		tb.Fatal(err)
	}
	return d
}

// answers dials addr until it reads want or the time is up.
func answers(addr, want string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) == want {
				return nil
			}
			last = fmt.Sprintf("read %q", got)
		} else {
			last = err.Error()
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s: no answer %q within %s (last: %s)", addr, want, within, last)
}

// BenchmarkWrite: the daemon time of one API write (add a server, then
// delete it: two writes per iteration) and of one attachment ADD + DEL,
// with n objects already live. A server write validates and persists the
// whole state, so it grows with n; an attachment write persists nothing
// (its record is the plugin's), and the churn target (per-ADD time not
// growing with the live count) is measured here.
//
//	go test -run '^$' -bench BenchmarkWrite ./sidecar/
func BenchmarkWrite(b *testing.B) {
	testns.RequireRoot(b)
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("server/live=%d", n), func(b *testing.B) {
			d := benchDaemon(b, State{Servers: apiServers(n, "127.0.0.1:19391")})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sv := api.Server{Backend: "be", Name: "extra", Addr: "127.0.0.1:19391"}
				if err := d.AddServer(sv); err != nil {
					b.Fatal(err)
				}
				if err := d.DeleteServer("be", "extra"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	ns := testns.New(b, "bw")
	path := "/var/run/netns/" + ns
	// attachment-hostport: the ADD has a host port (a listener opened and
	// closed), as every container of bench/churn.sh has; attachment-exposed:
	// the live ones have one too (127.0.X.1, ports 24400-24499).
	hostPort := []api.PortMapping{{HostPort: 20590, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
	for _, v := range []struct {
		name        string
		pm          []api.PortMapping
		liveExposed bool
	}{{"attachment", nil, false}, {"attachment-hostport", hostPort, false}, {"attachment-exposed", hostPort, true}} {
		for _, n := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("%s/live=%d", v.name, n), func(b *testing.B) {
				var st State
				for i := 0; i < n; i++ {
					a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("live%d", i), IfName: "eth0"},
						Netns: path, Source: api.SourceCNI, Tenant: netns.DefaultTenant}
					if v.liveExposed {
						a.PortMappings = []api.PortMapping{{HostPort: 24400 + i%100, ContainerPort: 80, Protocol: "tcp",
							HostIP: fmt.Sprintf("127.0.%d.1", 1+i/100)}}
					}
					st.Attachments = append(st.Attachments, a)
				}
				d := benchDaemon(b, st)
				// As the daemon runs by default: CNI attachments are durable
				// as the plugin's records, not in the state file.
				d.opt.AttachmentDir = b.TempDir()
				a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "churn", IfName: "eth0"}, Netns: path,
					PortMappings: v.pm}
				addDel(b, d, a)
			})
		}
	}
}

// addDel times b.N ADD+DEL of a through d and reports each half too
// (add-ns/op, del-ns/op): the churn target is per ADD.
func addDel(b *testing.B, d *Daemon, a api.Attachment) {
	var add, del time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := d.PutAttachment(a); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := d.DeleteAttachment(a.AttachmentKey); err != nil {
			b.Fatal(err)
		}
		add, del = add+t1.Sub(t0), del+time.Since(t1)
	}
	b.ReportMetric(float64(add.Nanoseconds())/float64(b.N), "add-ns/op")
	b.ReportMetric(float64(del.Nanoseconds())/float64(b.N), "del-ns/op")
}

// benchDaemon starts a daemon on restoreCfg with st saved, for benchmarks.
func benchDaemon(b testing.TB, st State) *Daemon {
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "n.cfg")
	os.WriteFile(cfgPath, []byte(restoreCfg("127.0.0.1:19392", "127.0.0.1:19391")), 0o644)
	stateFile := filepath.Join(dir, "state.json")
	if err := (&store{path: stateFile}).save(st); err != nil {
		b.Fatal(err)
	}
	d := startedDaemon(b, Options{ConfigFiles: []string{cfgPath}, StateFile: stateFile})
	b.Cleanup(func() { stopDaemon(d) })
	return d
}

// BenchmarkWriteTenants: one attachment ADD + DEL with n live attachments
// that all belong to a tenant by its selector (tenant limits set, not
// reached). range-full: they all match its Exposure rule, a range of 100
// ports on 127.0.0.2, so most find it full (the worst case of the range
// search; an attachment left out makes every write plan fully).
// hostport: each has a host port of its own (127.0.X.3) and the ADD has
// one too, as bench/churn.sh's containers under a tenant: the attachment
// fast path's case, which should stay as flat in n as
// BenchmarkWrite/attachment.
//
//	go test -run '^$' -bench BenchmarkWriteTenants ./sidecar/
func BenchmarkWriteTenants(b *testing.B) {
	testns.RequireRoot(b)
	ns := testns.New(b, "bt")
	path := "/var/run/netns/" + ns
	meta := map[string]string{hooks.MetaNetwork: "tenant-net"}
	ta := manifest.Tenant{Meta: manifest.Meta{Name: "ta"},
		Spec: manifest.TenantSpec{Select: []manifest.Selector{{Network: "tenant-net"}},
			Limits: manifest.Limits{MaxExposedPorts: 10000, MaxListeners: 10000}}}
	for _, v := range []struct {
		name     string
		set      manifest.Set
		hostPort bool
	}{
		{"range-full", manifest.Set{Tenants: []manifest.Tenant{ta},
			Exposures: []manifest.Exposure{{Meta: manifest.Meta{Name: "web", Tenant: "ta"},
				Spec: manifest.ExposureSpec{ContainerPort: 80, HostAddr: "127.0.0.2", PortRange: "20100-20199"}}}}, false},
		{"hostport", manifest.Set{Tenants: []manifest.Tenant{ta}}, true},
	} {
		for _, n := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("%s/live=%d", v.name, n), func(b *testing.B) {
				st := State{Manifests: v.set}
				for i := 0; i < n; i++ {
					a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: fmt.Sprintf("live%d", i), IfName: "eth0"},
						Netns: path, Source: api.SourceCNI, Tenant: netns.DefaultTenant, Metadata: meta}
					if v.hostPort {
						a.PortMappings = []api.PortMapping{{HostPort: 21240 + i%100, ContainerPort: 80, Protocol: "tcp",
							HostIP: fmt.Sprintf("127.0.%d.3", 1+i/100)}}
					}
					st.Attachments = append(st.Attachments, a)
				}
				d := benchDaemon(b, st)
				d.opt.AttachmentDir = b.TempDir()
				a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "churn", IfName: "eth0"}, Netns: path,
					Metadata: meta}
				if v.hostPort {
					a.PortMappings = []api.PortMapping{{HostPort: 21399, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
				}
				addDel(b, d, a)
			})
		}
	}
}
