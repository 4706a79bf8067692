// Package churn drives container churn through a real CNI chain: it
// creates network namespaces, adds them with cnitool to bridge networks
// whose chain ends in nsproxy-cni (each with one TCP hostPort), and
// measures what a busy node sees: ADD cost with and without nsproxy-cni,
// how soon a host port answers after ADD and is refused after DEL, the
// daemon's memory and fds per live container, and how long a restarted
// daemon takes to serve every container again. bench/cmd/churn and the
// e2e churn test run it; it owns everything it creates and removes it in
// Cleanup, also after a failure.
package churn

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

// PerBridge is how many containers share one bridge: a Linux bridge takes
// at most 1,024 ports, and each /22 has 1,021 addresses for containers.
const PerBridge = 1000

// Config says what to run. Zero values are documented defaults.
type Config struct {
	// N containers, added by Parallel ADDs at a time (0: 1).
	N, Parallel int
	// AddSamples: ADDs measured with and without nsproxy-cni, one after
	// the other, before the churn (0: none).
	AddSamples int
	// Restart kills the daemon with SIGKILL once all N are live and times
	// its successor until every container answers again.
	Restart bool
	// Nsproxy and Plugin are the binaries; CNITool is cnitool; PluginDir
	// holds the reference bridge and host-local plugins.
	Nsproxy, Plugin, CNITool, PluginDir string
	// NullPlugin, when set, is a chained plugin that does nothing
	// (bench/cmd/nullcni): the ADD comparison also times the chain with it,
	// the floor of what a chained Go plugin adds.
	NullPlugin string
	// Prefix starts every namespace, bridge and network name (at most 9
	// characters: interface names are short).
	Prefix string
	// Subnet is the second octet of the 10.x.0.0/16 the bridges use.
	Subnet int
	// WorkDir holds the daemon's socket, state, records and logs, the
	// conflists and the IPAM data.
	WorkDir string
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// Result is what one run measured. Durations are per container.
type Result struct {
	N, Parallel int
	// ADD of the chain alone, with nsproxy-cni and (Config.NullPlugin)
	// with a plugin that does nothing, interleaved.
	AddBare, AddNsproxy, AddNull []time.Duration
	// The same ADDs' CPU time (user + system of cnitool and every plugin
	// it ran, from wait4): unlike the wall time it does not grow with the
	// time spent waiting for a CPU on a busy machine.
	AddBareCPU, AddNsproxyCPU, AddNullCPU []time.Duration
	// ADD and DEL as the runtime saw them during the churn.
	Add, Del []time.Duration
	// Expose: ADD returned → the host port answers with the container's
	// reply. Release: DEL returned → connection refused.
	Expose, Release []time.Duration
	// Daemon CPU per ADD while the first and the last tenth were added.
	CPUPerAddFirst, CPUPerAddLast time.Duration
	// The daemon before any ADD, with N live, and after every DEL. Warm:
	// before the churn, after the ADD comparison's containers came and
	// went (zero without one): a daemon that has worked holds garbage up
	// to its GC goal and the code pages it ran, which a fresh one does not.
	Start, Warm, Live, AfterDel Usage
	// Restart: SIGKILL → every container answers (0: not run).
	Restart time.Duration
	// Failures counts ADDs and DELs that failed; Errors has the first few.
	Failures int
	Errors   []string
	// Leftover lists what the daemon still holds after every DEL.
	Leftover []string
}

// Usage is a daemon's resident memory and open fds.
type Usage struct {
	RSS int64 // bytes (VmRSS)
	// Anon and File split RSS: the process's own memory, and the pages of
	// mapped files (the binary's code and data) it has touched, which are
	// page cache shared with every other user of the file.
	Anon, File int64
	FDs        int
	Threads    int // OS threads: Go never ends an idle one
	// Go is the daemon's Go memory (its /metrics), where it answered.
	Go GoMemory
}

// GoMemory is where the Go runtime's memory is, from the daemon's
// go_memstats_* metrics, in bytes.
type GoMemory struct {
	HeapLive  float64 // objects, live or not yet swept (heap_alloc)
	HeapSpare float64 // heap spans held and unused (heap_idle - heap_released, heap_inuse - heap_alloc)
	Stacks    float64 // goroutine stacks (stack_inuse)
	GCGoal    float64 // the heap size at which the next GC starts
	// The runtime's own *_sys metrics are address space mapped, not
	// resident: the rest of RssAnon (runtime metadata, profiling buckets,
	// thread stacks) is what they leave out.
}

// goMemory reads GoMemory from a Prometheus text page.
func goMemory(page string) (GoMemory, bool) {
	v := map[string]float64{}
	for _, l := range strings.Split(page, "\n") {
		name, val, ok := strings.Cut(l, " ")
		if !ok || !strings.HasPrefix(name, "go_memstats_") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			v[strings.TrimPrefix(name, "go_memstats_")] = f
		}
	}
	if _, ok := v["heap_inuse_bytes"]; !ok {
		return GoMemory{}, false
	}
	return GoMemory{
		HeapLive:  v["heap_alloc_bytes"],
		HeapSpare: v["heap_idle_bytes"] - v["heap_released_bytes"] + v["heap_inuse_bytes"] - v["heap_alloc_bytes"],
		Stacks:    v["stack_inuse_bytes"],
		GCGoal:    v["next_gc_bytes"],
	}, true
}

// Runner owns one run's resources.
type Runner struct {
	cfg     Config
	sock    string
	records string
	confDir string
	cniPath string
	// metricsAddr: the daemon's --metrics-addr.
	metricsAddr string

	mu        sync.Mutex
	daemon    *exec.Cmd
	daemonOut *os.File
	created   []string // namespaces
	bridges   []string
	listeners []net.Listener
}

// New checks cfg and returns a runner; call Cleanup when done.
func New(cfg Config) (*Runner, error) {
	if cfg.Parallel < 1 {
		cfg.Parallel = 1
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if len(cfg.Prefix) == 0 || len(cfg.Prefix) > 9 {
		return nil, fmt.Errorf("prefix %q: give 1 to 9 characters (bridge names are short)", cfg.Prefix)
	}
	if cfg.N > 60*PerBridge {
		return nil, fmt.Errorf("%d containers: at most %d", cfg.N, 60*PerBridge)
	}
	for _, p := range []string{cfg.Nsproxy, cfg.Plugin, cfg.CNITool, filepath.Join(cfg.PluginDir, "bridge"), filepath.Join(cfg.PluginDir, "host-local")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s missing: make build, scripts/deps-cni.sh", p)
		}
	}
	r := &Runner{cfg: cfg, sock: filepath.Join(cfg.WorkDir, "ctl.sock"), records: filepath.Join(cfg.WorkDir, "attachments"),
		confDir: filepath.Join(cfg.WorkDir, "net.d"), cniPath: cfg.PluginDir + ":" + filepath.Dir(cfg.Plugin)}
	if cfg.NullPlugin != "" {
		if _, err := os.Stat(cfg.NullPlugin); err != nil {
			return nil, fmt.Errorf("null plugin: %w", err)
		}
		r.cniPath += ":" + filepath.Dir(cfg.NullPlugin)
	}
	// A loopback port the kernel picked for the daemon's metrics (the
	// restarted daemon takes it again).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.metricsAddr = l.Addr().String()
	l.Close()
	if err := os.MkdirAll(r.confDir, 0o755); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "%s churn: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// network names: bridge b's chain with nsproxy-cni, and the two bridges of
// the ADD comparison (-1 bare, -2 with nsproxy-cni).
func (r *Runner) netName(b int) string {
	switch b {
	case -1:
		return r.cfg.Prefix + "bare"
	case -2:
		return r.cfg.Prefix + "cmp"
	case -3:
		return r.cfg.Prefix + "null"
	}
	return fmt.Sprintf("%sn%d", r.cfg.Prefix, b)
}

// The chained plugin of a network: none, nsproxy-cni or the null plugin.
const (
	chainBare = iota
	chainNsproxy
	chainNull
)

// writeNetwork writes the conflist of network b on its own bridge and /22.
func (r *Runner) writeNetwork(b int, chain int) error {
	name := r.netName(b)
	bridge := name + "br"
	third := 4 * b // at most 59 bridges: 0..232
	if b < 0 {
		third = 252 + 4*b // -1: 248, -2: 244, -3: 240
	}
	plugins := []any{map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "subnet": fmt.Sprintf("10.%d.%d.0/22", r.cfg.Subnet, third),
			"dataDir": filepath.Join(r.cfg.WorkDir, "ipam")}}}
	switch chain {
	case chainNsproxy:
		plugins = append(plugins, map[string]any{"type": filepath.Base(r.cfg.Plugin), "socket": r.sock,
			"attachmentDir": r.records, "capabilities": map[string]bool{"portMappings": true}})
	case chainNull:
		plugins = append(plugins, map[string]any{"type": filepath.Base(r.cfg.NullPlugin)})
	}
	b2, _ := json.MarshalIndent(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": plugins}, "", "  ")
	r.mu.Lock()
	r.bridges = append(r.bridges, bridge)
	r.mu.Unlock()
	return os.WriteFile(filepath.Join(r.confDir, name+".conflist"), b2, 0o644)
}

// StartDaemon starts nsproxy with no configuration file and waits until
// its control socket answers.
func (r *Runner) StartDaemon() error {
	out, err := os.OpenFile(filepath.Join(r.cfg.WorkDir, "nsproxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.cfg.Nsproxy, "run", "--socket", r.sock, "--state-file", filepath.Join(r.cfg.WorkDir, "state.json"),
		"--attachment-dir", r.records, "--log-level", "warn", "--drain-timeout", "1s", "--metrics-addr", r.metricsAddr)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	r.mu.Lock()
	r.daemon, r.daemonOut = cmd, out
	r.mu.Unlock()
	c := hooks.NewClient(r.sock, hooks.WithTimeout(time.Second))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.Ready(context.Background()) == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("nsproxy not ready within 30 s (see %s)", out.Name())
}

// killDaemon ends the daemon with SIGKILL and reaps it.
func (r *Runner) killDaemon() {
	r.mu.Lock()
	cmd, out := r.daemon, r.daemonOut
	r.daemon, r.daemonOut = nil, nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	cmd.Wait()
	out.Close()
}

// DaemonUsage reads the daemon's RSS and open fds from /proc.
func (r *Runner) DaemonUsage() (Usage, error) {
	r.mu.Lock()
	cmd := r.daemon
	r.mu.Unlock()
	if cmd == nil {
		return Usage{}, errors.New("no daemon")
	}
	u, err := usageOf(cmd.Process.Pid)
	if err != nil {
		return u, err
	}
	// Best effort: the figures above are the measurement, this says why.
	// No keep-alive: an idle connection left open would count in the
	// daemon's fds at the next reading.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Get("http://" + r.metricsAddr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.Go, _ = goMemory(string(b))
	}
	return u, nil
}

func usageOf(pid int) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		switch key {
		case "VmRSS":
			u.RSS = kb << 10
		case "RssAnon":
			u.Anon = kb << 10
		case "RssFile":
			u.File = kb << 10
		case "Threads":
			u.Threads, _ = strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return u, err
	}
	u.FDs = len(fds)
	return u, nil
}

// daemonCPU is the daemon's user+system time.
func (r *Runner) daemonCPU() time.Duration {
	r.mu.Lock()
	cmd := r.daemon
	r.mu.Unlock()
	if cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// container is one namespace with its server and host port.
type container struct {
	i        int
	ns       string
	net      string
	hostPort int
	reply    string
}

// makeNamespaces creates count namespaces named Prefix+tag+index, in one
// ip -batch.
func (r *Runner) makeNamespaces(tag string, count int) ([]string, error) {
	var names []string
	var batch bytes.Buffer
	for i := 0; i < count; i++ {
		n := fmt.Sprintf("%s%s%05d", r.cfg.Prefix, tag, i)
		names = append(names, n)
		fmt.Fprintf(&batch, "netns add %s\n", n)
	}
	cmd := exec.Command("ip", "-force", "-batch", "-")
	cmd.Stdin = &batch
	out, err := cmd.CombinedOutput()
	// Whatever was made is ours to remove, also after an error.
	r.mu.Lock()
	for _, n := range names {
		if _, serr := os.Stat("/var/run/netns/" + n); serr == nil {
			r.created = append(r.created, n)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	return names, nil
}

// serve listens on 0.0.0.0:80 inside ns and answers every connection
// with reply; the listener closes in Cleanup.
func (r *Runner) serve(ns, reply string) error {
	h, err := netns.OpenPath("/var/run/netns/"+ns, ns)
	if err != nil {
		return err
	}
	// The exposure dials the container's own address from inside its
	// namespace, through lo: a fresh namespace has lo down.
	err = h.Do(loUp)
	var ln net.Listener
	if err == nil {
		ln, err = h.Listen(netip.MustParseAddrPort("0.0.0.0:80"))
	}
	h.Close()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.listeners = append(r.listeners, ln)
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	return nil
}

// loUp sets lo up in the calling thread's namespace.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// portHolds asks the kernel for count free loopback ports and keeps each
// bound until its container's ADD (release), so that no other program
// takes it in the meantime.
type portHolds struct {
	mu  sync.Mutex
	lns map[int]net.Listener
}

func holdPorts(count int) (*portHolds, []int, error) {
	h := &portHolds{lns: map[int]net.Listener{}}
	var ports []int
	for i := 0; i < count; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			h.releaseAll()
			return nil, nil, fmt.Errorf("free port %d of %d: %w", i+1, count, err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		h.lns[p] = l
		ports = append(ports, p)
	}
	return h, ports, nil
}

func (h *portHolds) release(port int) {
	h.mu.Lock()
	l := h.lns[port]
	delete(h.lns, port)
	h.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

func (h *portHolds) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, l := range h.lns {
		l.Close()
		delete(h.lns, p)
	}
}

// clientAddr is the source of every probe: not 127.0.0.1, so that a probe's
// ephemeral port never holds a host port the daemon is about to bind.
var clientAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

func dial(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: time.Second, LocalAddr: clientAddr}
	return d.Dial("tcp4", addr)
}

// cnitool runs `cnitool verb net /var/run/netns/ns`.
func (r *Runner) cnitool(verb, network, ns string, hostPort int) error {
	_, err := r.cnitoolCPU(verb, network, ns, hostPort)
	return err
}

// cnitoolCPU runs cnitool as cnitool does and returns the CPU time of
// cnitool and the plugins it ran (they are its waited-for children).
func (r *Runner) cnitoolCPU(verb, network, ns string, hostPort int) (time.Duration, error) {
	cmd := exec.Command(r.cfg.CNITool, verb, network, "/var/run/netns/"+ns)
	caps := ""
	if hostPort > 0 {
		caps = fmt.Sprintf(`{"portMappings":[{"hostPort":%d,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]}`, hostPort)
	}
	cmd.Env = append(os.Environ(), "NETCONFPATH="+r.confDir, "CNI_PATH="+r.cniPath, "CNI_IFNAME=eth0", "CAP_ARGS="+caps)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("cnitool %s %s %s: %v: %s", verb, network, ns, err, strings.TrimSpace(out.String()))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// ContainerID is cnitool's container ID for ns.
func ContainerID(ns string) string {
	s := sha512.Sum512([]byte("/var/run/netns/" + ns))
	return fmt.Sprintf("cnitool-%x", s[:10])
}

// answers dials 127.0.0.1:port until it reads want; it returns when.
func answers(port int, want string, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var last string
	for {
		c, err := dial(addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			if string(b) == want {
				return time.Now(), nil
			}
			last = fmt.Sprintf("read %q", b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: no answer %q within %s (last: %s)", addr, want, within, last)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// released dials 127.0.0.1:port until it no longer answers with reply:
// the connection is refused, or (the kernel gave the freed port to another
// program at once) something else answers.
func released(port int, reply string, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := dial(addr)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			return time.Now(), nil
		}
		if c != nil {
			c.SetDeadline(time.Now().Add(time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			if string(b) != reply && len(b) > 0 {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: still answering %s after DEL", addr, within)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// Run measures everything Config asks for. An error means the run could
// not be done; failed ADDs, DELs, exposures and releases are counted in
// the Result instead.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	res := &Result{N: cfg.N, Parallel: cfg.Parallel}
	fail := func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		res.Failures++
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	if err := r.StartDaemon(); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // let start-up allocations settle
	var err error
	if res.Start, err = r.DaemonUsage(); err != nil {
		return nil, err
	}
	if cfg.AddSamples > 0 {
		if err := r.compareAdds(ctx, res); err != nil {
			return nil, err
		}
		if res.Warm, err = r.DaemonUsage(); err != nil {
			return nil, err
		}
	}
	if cfg.N == 0 {
		return res, nil
	}
	bridges := (cfg.N + PerBridge - 1) / PerBridge
	for b := 0; b < bridges; b++ {
		if err := r.writeNetwork(b, chainNsproxy); err != nil {
			return nil, err
		}
	}
	r.logf("creating %d namespaces with a server each", cfg.N)
	names, err := r.makeNamespaces("c", cfg.N)
	if err != nil {
		return nil, err
	}
	holds, ports, err := holdPorts(cfg.N)
	if err != nil {
		return nil, err
	}
	defer holds.releaseAll()
	cs := make([]container, cfg.N)
	for i := range cs {
		cs[i] = container{i: i, ns: names[i], net: r.netName(i / PerBridge), hostPort: ports[i], reply: fmt.Sprintf("c%d\n", i)}
		if err := r.serve(cs[i].ns, cs[i].reply); err != nil {
			return nil, err
		}
	}

	r.logf("adding %d containers, %d at a time", cfg.N, cfg.Parallel)
	res.Add = make([]time.Duration, cfg.N)
	res.Expose = make([]time.Duration, cfg.N)
	added := make([]bool, cfg.N)
	tenth := max(cfg.N/10, 1)
	var done atomic.Int64
	var cpuMarks [4]time.Duration
	cpuMarks[0] = r.daemonCPU()
	var markMu sync.Mutex
	r.parallel(ctx, cfg.N, func(i int) {
		c := cs[i]
		holds.release(c.hostPort)
		t0 := time.Now()
		if err := r.cnitool("add", c.net, c.ns, c.hostPort); err != nil {
			fail(err)
			return
		}
		t1 := time.Now()
		added[i] = true
		res.Add[i] = t1.Sub(t0)
		at, err := answers(c.hostPort, c.reply, 10*time.Second)
		if err != nil {
			fail(fmt.Errorf("container %d exposure: %w", i, err))
			return
		}
		res.Expose[i] = at.Sub(t1)
		n := done.Add(1)
		markMu.Lock()
		switch n {
		case int64(tenth):
			cpuMarks[1] = r.daemonCPU()
		case int64(cfg.N - tenth):
			cpuMarks[2] = r.daemonCPU()
		case int64(cfg.N):
			cpuMarks[3] = r.daemonCPU()
		}
		markMu.Unlock()
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if cpuMarks[3] > 0 {
		res.CPUPerAddFirst = (cpuMarks[1] - cpuMarks[0]) / time.Duration(tenth)
		res.CPUPerAddLast = (cpuMarks[3] - cpuMarks[2]) / time.Duration(tenth)
	}
	time.Sleep(500 * time.Millisecond)
	if res.Live, err = r.DaemonUsage(); err != nil {
		return nil, err
	}
	r.logf("%d live: daemon RSS %.1f MiB, %d fds", cfg.N, float64(res.Live.RSS)/(1<<20), res.Live.FDs)
	// All of them at once, not only each right after its ADD.
	r.parallel(ctx, cfg.N, func(i int) {
		if added[i] {
			if _, err := answers(cs[i].hostPort, cs[i].reply, 5*time.Second); err != nil {
				fail(fmt.Errorf("container %d with all live: %w", i, err))
			}
		}
	})

	if cfg.Restart {
		r.logf("restart: SIGKILL, then a new daemon until all %d answer", cfg.N)
		r.killDaemon()
		t0 := time.Now()
		if err := r.StartDaemon(); err != nil {
			return nil, err
		}
		var mu sync.Mutex
		var last time.Time
		r.parallelN(ctx, cfg.N, 32, func(i int) {
			if !added[i] {
				return
			}
			at, err := answers(cs[i].hostPort, cs[i].reply, 30*time.Second)
			if err != nil {
				fail(fmt.Errorf("container %d after restart: %w", i, err))
				return
			}
			mu.Lock()
			if at.After(last) {
				last = at
			}
			mu.Unlock()
		})
		res.Restart = last.Sub(t0)
		r.logf("restart: all serving after %s", res.Restart.Round(time.Millisecond))
	}

	r.logf("deleting %d containers, %d at a time", cfg.N, cfg.Parallel)
	res.Del = make([]time.Duration, cfg.N)
	res.Release = make([]time.Duration, cfg.N)
	r.parallel(ctx, cfg.N, func(i int) {
		if !added[i] {
			return
		}
		c := cs[i]
		t0 := time.Now()
		if err := r.cnitool("del", c.net, c.ns, c.hostPort); err != nil {
			fail(err)
			return
		}
		t1 := time.Now()
		res.Del[i] = t1.Sub(t0)
		at, err := released(c.hostPort, c.reply, 10*time.Second)
		if err != nil {
			fail(fmt.Errorf("container %d release: %w", i, err))
			return
		}
		res.Release[i] = at.Sub(t1)
	})
	res.Add, res.Expose = nonZero(res.Add), nonZero(res.Expose)
	res.Del, res.Release = nonZero(res.Del), nonZero(res.Release)
	// The daemon returns freed memory to the kernel at most every 10 s
	// (sidecar/delta.go, freeOSMemory), 1 s after the DEL that asked.
	time.Sleep(12 * time.Second)
	if res.AfterDel, err = r.DaemonUsage(); err != nil {
		return nil, err
	}
	res.Leftover, err = r.leftover(names)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// leftover lists what the daemon still knows of the deleted containers.
func (r *Runner) leftover(names []string) ([]string, error) {
	c := hooks.NewClient(r.sock, hooks.WithTimeout(10*time.Second))
	atts, err := c.Attachments(context.Background())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range atts {
		out = append(out, "attachment "+a.ContainerID+"/"+a.IfName)
	}
	recs, _ := hooks.ListRecords(r.records)
	for _, a := range recs {
		out = append(out, "record "+a.ContainerID+"/"+a.IfName)
	}
	var nss []struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	if err := getJSON(r.sock, "/v1/namespaces", &nss); err != nil {
		return nil, err
	}
	ours := map[string]bool{}
	for _, n := range names {
		ours["/var/run/netns/"+n] = true
	}
	for _, n := range nss {
		if ours[n.Path] {
			out = append(out, "namespace "+n.Name)
		}
	}
	var fes []struct {
		Name string `json:"name"`
	}
	if err := getJSON(r.sock, "/v1/frontends", &fes); err != nil {
		return nil, err
	}
	for _, f := range fes {
		out = append(out, "frontend "+f.Name)
	}
	// A namespace handle the daemon kept would keep the namespace alive.
	inos := map[string]string{}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Stat("/var/run/netns/"+n, &st) == nil {
			inos[fmt.Sprintf("net:[%d]", st.Ino)] = n
		}
	}
	r.mu.Lock()
	pid := r.daemon.Process.Pid
	r.mu.Unlock()
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if n, ok := inos[link]; ok {
			out = append(out, "fd "+fd.Name()+" on namespace "+n)
		}
	}
	return out, nil
}

func getJSON(sock, path string, v any) error {
	_, err := hooks.NewClient(sock).Do(context.Background(), "GET", path, nil, v)
	return err
}

// compareAdds times ADDs of the bare chain, of the chain with nsproxy-cni
// and (Config.NullPlugin) of the chain with a plugin that does nothing,
// one at a time, rotating which goes first.
func (r *Runner) compareAdds(ctx context.Context, res *Result) error {
	n := r.cfg.AddSamples
	type variant struct {
		net       int
		chain     int
		wall, cpu *[]time.Duration
	}
	vs := []variant{{-1, chainBare, &res.AddBare, &res.AddBareCPU}, {-2, chainNsproxy, &res.AddNsproxy, &res.AddNsproxyCPU}}
	if r.cfg.NullPlugin != "" {
		vs = append(vs, variant{-3, chainNull, &res.AddNull, &res.AddNullCPU})
	}
	for _, v := range vs {
		if err := r.writeNetwork(v.net, v.chain); err != nil {
			return err
		}
	}
	r.logf("ADD cost: %d ADDs of each of %d chains, interleaved", n, len(vs))
	names, err := r.makeNamespaces("a", len(vs)*n)
	if err != nil {
		return err
	}
	holds, ports, err := holdPorts(n)
	if err != nil {
		return err
	}
	defer holds.releaseAll()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		for k := range vs {
			v := vs[(i+k)%len(vs)] // rotate which goes first
			port := 0
			if v.chain == chainNsproxy {
				holds.release(ports[i])
				port = ports[i]
			}
			t0 := time.Now()
			cpu, err := r.cnitoolCPU("add", r.netName(v.net), names[len(vs)*i+int(-v.net-1)], port)
			if err != nil {
				return err
			}
			*v.wall = append(*v.wall, time.Since(t0))
			*v.cpu = append(*v.cpu, cpu)
		}
	}
	for i := 0; i < n; i++ {
		for _, v := range vs {
			port := 0
			if v.chain == chainNsproxy {
				port = ports[i]
			}
			r.cnitool("del", r.netName(v.net), names[len(vs)*i+int(-v.net-1)], port)
		}
	}
	return ctx.Err()
}

// parallel runs fn(0..n-1) on Parallel workers.
func (r *Runner) parallel(ctx context.Context, n int, fn func(int)) {
	r.parallelN(ctx, n, r.cfg.Parallel, fn)
}

func (r *Runner) parallelN(ctx context.Context, n, workers int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func nonZero(ds []time.Duration) []time.Duration {
	return slices.DeleteFunc(slices.Clone(ds), func(d time.Duration) bool { return d == 0 })
}

// DaemonLog is the daemon's log so far.
func (r *Runner) DaemonLog() string {
	b, _ := os.ReadFile(filepath.Join(r.cfg.WorkDir, "nsproxy.log"))
	return string(b)
}

// Cleanup stops the daemon and removes every namespace, bridge, listener
// and file of the run. It is safe to call more than once.
func (r *Runner) Cleanup() {
	r.killDaemon()
	r.mu.Lock()
	lns, created, bridges := r.listeners, r.created, r.bridges
	r.listeners, r.created, r.bridges = nil, nil, nil
	r.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	if len(created) > 0 {
		var batch bytes.Buffer
		for _, n := range created {
			fmt.Fprintf(&batch, "netns del %s\n", n)
		}
		cmd := exec.Command("ip", "-force", "-batch", "-")
		cmd.Stdin = &batch
		cmd.Run()
	}
	for _, b := range bridges {
		exec.Command("ip", "link", "del", b).Run()
	}
	os.RemoveAll(r.cfg.WorkDir)
}
