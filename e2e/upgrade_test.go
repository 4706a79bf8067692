//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// copyBinary makes a private copy of the nsproxy binary: the upgrade
// starts another file than the one running.
func copyBinary(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.ReadFile(nsproxyBin(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// notifySocket is a test-owned stand-in for systemd's notification socket:
// it records each datagram with the sender's pid (SCM_CREDENTIALS, as
// systemd reads it).
type notifySocket struct {
	path string
	c    *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	pid  int32
	text string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: p})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := c.SyscallConn()
	raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	n := &notifySocket{path: p, c: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		oob := make([]byte, 1024)
		for {
			k, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			var pid int32
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if cred, err := unix.ParseUnixCredentials(&m); err == nil {
						pid = cred.Pid
					}
				}
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, notifyMsg{pid, string(buf[:k])})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

// has reports whether pid sent a datagram containing every line of want.
func (n *notifySocket) has(pid int, want ...string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		lines := strings.Split(strings.TrimSpace(m.text), "\n")
		if int(m.pid) != pid {
			continue
		}
		ok := true
		for _, w := range want {
			if !slices.Contains(lines, w) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (n *notifySocket) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, m := range n.msgs {
		fmt.Fprintf(&b, "pid %d: %q\n", m.pid, m.text)
	}
	return b.String()
}

// exited reports whether pid is gone or a zombie.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// loadStats counts the short connections of the load generator.
type loadStats struct {
	ok, refused, failed atomic.Int64
	mu                  sync.Mutex
	samples             []sample
	firstErr            error
}

type sample struct {
	start   time.Time
	latency time.Duration
}

// window returns the most connections' connect+echo latency for those
// that started in [from, to], and the longest time in [from, to] in which
// no connection completed: the accept pause a client saw.
func (s *loadStats) window(from, to time.Time) (maxLatency, maxGap time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ends []time.Time
	for _, x := range s.samples {
		end := x.start.Add(x.latency)
		if !x.start.Before(from) && !x.start.After(to) {
			n++
			maxLatency = max(maxLatency, x.latency)
		}
		if !end.Before(from) && !end.After(to) {
			ends = append(ends, end)
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	prev := from
	for _, e := range ends {
		maxGap = max(maxGap, e.Sub(prev))
		prev = e
	}
	return maxLatency, max(maxGap, to.Sub(prev)), n
}

func (s *loadStats) record(start time.Time, err error) {
	lat := time.Since(start)
	switch {
	case err == nil:
		s.ok.Add(1)
	case errors.Is(err, syscall.ECONNREFUSED):
		s.refused.Add(1)
	default:
		s.failed.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.firstErr == nil {
		s.firstErr = err
	}
	if err == nil {
		s.samples = append(s.samples, sample{start, lat})
	}
}

// shortConn connects, sends a line, expects it back and closes.
func shortConn(t *testing.T, ns, addr string) error {
	c, err := dialIn(t, ns, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// longStream sends a seeded pseudo-random byte stream through an echo
// path and compares every byte that comes back, until stop is closed.
func longStream(t *testing.T, ns, addr string, seed uint64, stop <-chan struct{}) (sent int64, err error) {
	c, err := dialIn(t, ns, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	readErr := make(chan error, 1)
	var received atomic.Int64
	go func() {
		want := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 64<<10)
		exp := make([]byte, 64<<10)
		for {
			tc.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := tc.Read(buf)
			if n > 0 {
				fill(want, exp[:n])
				if !bytes.Equal(buf[:n], exp[:n]) {
					readErr <- fmt.Errorf("byte mismatch after %d bytes", received.Load())
					return
				}
				received.Add(int64(n))
			}
			if err == io.EOF {
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	gen := rand.New(rand.NewPCG(seed, seed))
	chunk := make([]byte, 16<<10)
	tick := time.NewTicker(5 * time.Millisecond) // ~3 MiB/s per stream
	defer tick.Stop()
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-tick.C:
		}
		fill(gen, chunk)
		tc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := tc.Write(chunk); err != nil {
			return sent, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
		sent += int64(len(chunk))
	}
	tc.CloseWrite()
	if err := <-readErr; err != nil {
		return sent, err
	}
	if received.Load() != sent {
		return sent, fmt.Errorf("sent %d bytes, received %d", sent, received.Load())
	}
	return sent, nil
}

// fill continues the generator's byte sequence, whatever the chunk sizes.
func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// TestUpgradeZeroDowntime: under a constant load of short connections and
// 4 long byte-exact streams through a host port, an API frontend and a
// listener inside a namespace, `nsproxy upgrade` to another binary file
// refuses no connection, every stream completes byte-exact, the old
// process exits after its connections drained, and the new one serves
// and is systemd's main process.
func TestUpgradeZeroDowntime(t *testing.T) {
	nsproxyBin(t)
	dir := t.TempDir()
	bin1, bin2 := copyBinary(t, dir, "nsproxy-1"), copyBinary(t, dir, "nsproxy-2")
	l, s := newNS(t, "L"), newNS(t, "S")
	serveFunc(t, s, "127.0.0.1:7000", func(c io.ReadWriter) { io.Copy(c, c) })
	const hostAddr, apiAddr, nsAddr, metricsAddr = "127.0.0.1:19701", "127.0.0.1:19702", "127.0.0.1:8000", "127.0.0.1:19703"
	cfg := writeFile(t, dir, "up.cfg", fmt.Sprintf(`
namespace_list
    namespace %[1]s
    namespace %[2]s

frontend host
    bind %[3]s
    default_backend echo

frontend inns
    bind %[4]s namespace %[1]s
    default_backend echo

backend echo
    server s1 127.0.0.1:7000 namespace %[2]s
`, l, s, hostAddr, nsAddr))
	socket := filepath.Join(dir, "ctl.sock")
	notify := newNotifySocket(t)

	a := &daemon{t: t, done: make(chan struct{}), socket: socket}
	a.cmd = exec.Command(bin1, "run", "-f", cfg, "--socket", socket, "--state-file", filepath.Join(dir, "state.json"),
		"--attachment-dir", "none", "--drain-timeout", "60s", "--metrics-addr", metricsAddr)
	a.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=400000")
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a.cmd.WaitDelay = 2 * time.Second
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	newPID := 0
	t.Cleanup(func() {
		// The successor runs in the old daemon's process group.
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		if newPID > 0 {
			syscall.Kill(newPID, syscall.SIGKILL)
		}
		<-a.done
		if t.Failed() {
			t.Logf("nsproxy log:\n%s\nnotifications:\n%s", a.logs(), notify)
		}
	})
	oldPID := a.cmd.Process.Pid
	eventually(t, "READY=1 from the old daemon", func() error {
		if !notify.has(oldPID, "READY=1") {
			return errors.New("not yet")
		}
		return nil
	})
	// A frontend made through the API lives in the state file.
	post(t, socket, "/v1/frontends", fmt.Sprintf(`{"name":"api","binds":[{"addr":%q}],"backend":"echo"}`, apiAddr))
	targets := []struct{ ns, addr string }{{"", hostAddr}, {"", apiAddr}, {l, nsAddr}}
	for _, tg := range targets {
		eventually(t, "serve "+tg.addr, func() error { return shortConn(t, tg.ns, tg.addr) })
	}

	// Load: short connections from 6 workers over the three frontends,
	// bounded in time and count, and 4 long streams.
	var st loadStats
	loadStart := time.Now()
	stopShort, stopLong := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	const maxConns = 200000
	var issued atomic.Int64
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second)
			for i := w; ; i++ {
				select {
				case <-stopShort:
					return
				default:
				}
				if time.Now().After(deadline) || issued.Add(1) > maxConns {
					return
				}
				tg := targets[i%len(targets)]
				start := time.Now()
				st.record(start, shortConn(t, tg.ns, tg.addr))
			}
		}()
	}
	type streamResult struct {
		sent int64
		err  error
	}
	results := make([]streamResult, 4)
	var swg sync.WaitGroup
	for i := range 4 {
		swg.Add(1)
		go func() {
			defer swg.Done()
			tg := targets[i%len(targets)]
			results[i].sent, results[i].err = longStream(t, tg.ns, tg.addr, uint64(i+1), stopLong)
		}()
	}
	time.Sleep(time.Second)
	before := st.ok.Load()

	upStart := time.Now()
	out, err := exec.Command(bin1, "upgrade", "--binary", bin2, "--socket", socket).CombinedOutput()
	upDur := time.Since(upStart)
	if err != nil {
		t.Fatalf("nsproxy upgrade: %v\n%s", err, out)
	}
	t.Logf("upgrade: %s (took %v)", strings.TrimSpace(string(out)), upDur)
	f := strings.Fields(string(out))
	if len(f) < 3 || f[0] != "upgraded:" {
		t.Fatalf("upgrade output %q", out)
	}
	newPID, _ = strconv.Atoi(f[2])
	if newPID <= 0 || newPID == oldPID {
		t.Fatalf("new pid %d from %q", newPID, out)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", newPID)); exe != bin2 {
		t.Fatalf("successor runs %q, want %q", exe, bin2)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stopShort)
	wg.Wait()
	loadEnd := time.Now()
	// The streams were accepted by the old daemon: it must still be there,
	// draining them.
	if exited(oldPID) {
		t.Fatal("old daemon exited before its streams ended")
	}
	close(stopLong)
	swg.Wait()
	var total int64
	for i, r := range results {
		if r.err != nil {
			t.Errorf("stream %d: %v after %d bytes", i, r.err, r.sent)
		}
		total += r.sent
	}
	deadline := time.Now().Add(15 * time.Second)
	for !exited(oldPID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !exited(oldPID) {
		t.Fatal("old daemon still running after its connections drained")
	}
	allLat, allGap, _ := st.window(loadStart, loadEnd)
	upLat, upGap, upN := st.window(upStart, upStart.Add(upDur))
	t.Logf("load: %d short connections ok (%d during and after the upgrade, %d while it ran), %d refused, %d failed; "+
		"while upgrading: max connect+echo latency %v, longest time without a completed connection %v "+
		"(whole run: %v, %v); 4 streams, %d bytes echoed byte-exact",
		st.ok.Load(), st.ok.Load()-before, upN, st.refused.Load(), st.failed.Load(), upLat, upGap, allLat, allGap, total)
	if upN == 0 {
		t.Error("no connection completed while the upgrade ran: the load did not cover it")
	}
	if st.refused.Load() != 0 || st.failed.Load() != 0 {
		t.Errorf("%d connections refused, %d failed; first error: %v", st.refused.Load(), st.failed.Load(), st.firstErr)
	}
	logs := a.logs()
	for _, want := range []string{"handed over: no longer accepting", "forced_closed=0", "takeover: the old daemon stopped accepting"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, "cannot listen") {
		t.Error("the successor bound a socket instead of taking it over")
	}
	// The successor serves everything, the control socket included, and
	// is the main process for systemd.
	for _, tg := range targets {
		if err := shortConn(t, tg.ns, tg.addr); err != nil {
			t.Errorf("successor: %s: %v", tg.addr, err)
		}
	}
	if out, err := exec.Command(bin2, "get", "frontends", "--socket", socket).CombinedOutput(); err != nil || !strings.Contains(string(out), "api") {
		t.Errorf("control socket after the upgrade: %v\n%s", err, out)
	}
	if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Errorf("metrics port after the upgrade: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := os.Stat(socket); err != nil {
		t.Errorf("control socket path gone after the old daemon exited: %v", err)
	}
	for _, want := range [][]string{{"RELOADING=1"}, {"WATCHDOG=1"}} {
		if !notify.has(oldPID, want...) {
			t.Errorf("old daemon did not send %v", want)
		}
	}
	if notify.has(oldPID, "STOPPING=1") {
		t.Error("old daemon sent STOPPING=1 after handing over: systemd would stop the service")
	}
	eventually(t, "MAINPID and READY=1 from the successor, then its WATCHDOG=1", func() error {
		if !notify.has(newPID, "MAINPID="+strconv.Itoa(newPID), "READY=1") || !notify.has(newPID, "WATCHDOG=1") {
			return errors.New("not yet")
		}
		return nil
	})

	// The successor upgrades again, back to the first file.
	out, err = exec.Command(bin2, "upgrade", "--binary", bin1, "--socket", socket).CombinedOutput()
	if err != nil {
		t.Fatalf("second upgrade: %v\n%s", err, out)
	}
	f = strings.Fields(string(out))
	third, _ := strconv.Atoi(f[2])
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", third)); exe != bin1 {
		t.Fatalf("second successor runs %q, want %q (%s)", exe, bin1, out)
	}
	t.Cleanup(func() { syscall.Kill(third, syscall.SIGKILL) })
	for _, tg := range targets {
		if err := shortConn(t, tg.ns, tg.addr); err != nil {
			t.Errorf("after the second upgrade: %s: %v", tg.addr, err)
		}
	}
	eventually(t, "the first successor exits", func() error {
		if !exited(newPID) {
			return errors.New("still running")
		}
		return nil
	})
}

// TestTakeoverDirect: `nsproxy run --takeover` started by hand (not by
// `nsproxy upgrade`) takes over too; an established connection through
// the old daemon keeps working until it ends, then the old daemon exits.
// Without -f the daemon is a pure host daemon for CNI/OCI and API objects;
// a CNI exposure's host port is handed over like any listener.
func TestTakeoverDirect(t *testing.T) {
	l, s := newNS(t, "L"), newNS(t, "S")
	serveFunc(t, s, "127.0.0.1:7000", func(c io.ReadWriter) { io.Copy(c, c) })
	dir := t.TempDir()
	socket, state := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json")
	args := []string{"--socket", socket, "--state-file", state, "--attachment-dir", "none"}
	a := startDaemon(t, nil, args...) // no -f
	a.waitLog("nsproxy running")
	for _, body := range []string{
		fmt.Sprintf(`{"name":%q,"path":"/var/run/netns/%s"}`, l, l),
		fmt.Sprintf(`{"name":%q,"path":"/var/run/netns/%s"}`, s, s),
	} {
		post(t, socket, "/v1/namespaces", body)
	}
	post(t, socket, "/v1/backends", fmt.Sprintf(`{"name":"echo","servers":[{"backend":"echo","name":"s1","addr":"127.0.0.1:7000","namespace":%q}]}`, s))
	post(t, socket, "/v1/frontends", fmt.Sprintf(`{"name":"inns","binds":[{"addr":"127.0.0.1:8000","namespace":%q}],"backend":"echo"}`, l))
	// A container's port mapping, as the CNI plugin reports it: a host
	// port listener that forwards into the container's namespace S.
	post(t, socket, "/v1/attachments", fmt.Sprintf(`{"containerID":"upgradetest0001","ifname":"eth0","netns":"/var/run/netns/%s",`+
		`"portMappings":[{"hostPort":19704,"containerPort":7000,"protocol":"tcp","hostIP":"127.0.0.1"}],`+
		`"metadata":{"nsproxy.io/target":"loopback"}}`, s))
	eventually(t, "API frontend in L serves", func() error { return shortConn(t, l, "127.0.0.1:8000") })
	eventually(t, "CNI exposure serves", func() error { return shortConn(t, "", "127.0.0.1:19704") })
	old, err := dialIn(t, l, "127.0.0.1:8000")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	r := bufio.NewReader(old)
	echo := func(msg string) error {
		old.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(old, msg+"\n"); err != nil {
			return err
		}
		got, err := r.ReadString('\n')
		if err == nil && got != msg+"\n" {
			err = fmt.Errorf("echo %q", got)
		}
		return err
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	b := startDaemon(t, nil, append(args, "--takeover")...)
	b.waitLog("takeover: the old daemon stopped accepting")
	if strings.Contains(b.logs(), "cannot listen") {
		t.Fatalf("successor bound instead of taking over:\n%s", b.logs())
	}
	for _, tg := range []struct{ ns, addr string }{{l, "127.0.0.1:8000"}, {"", "127.0.0.1:19704"}} {
		if err := shortConn(t, tg.ns, tg.addr); err != nil {
			t.Fatalf("successor does not serve %s: %v", tg.addr, err)
		}
	}
	if n := strings.Count(b.logs(), "listener taken over"); n != 2 {
		t.Fatalf("%d listeners taken over, want 2 (namespace listener, CNI exposure):\n%s", n, b.logs())
	}
	if err := echo("after"); err != nil {
		t.Fatalf("established connection broken by the takeover: %v", err)
	}
	if err := a.wait(200 * time.Millisecond); err == nil {
		t.Fatal("old daemon exited while a connection was open")
	}
	old.Close()
	if err := a.wait(10 * time.Second); err != nil {
		t.Fatalf("old daemon after its last connection: %v", err)
	}
	if out, err := b.cli("get", "frontends"); err != nil || !strings.Contains(out, "inns") {
		t.Fatalf("successor's API: %v\n%s", err, out)
	}
}

func post(t *testing.T, socket, path, body string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Post("http://nsproxy"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
}

// TestTakeoverDrainTimeout: the old daemon's drain after a hand-over is
// bounded by its --drain-timeout: a connection that never ends is closed
// and the old daemon exits.
func TestTakeoverDrainTimeout(t *testing.T) {
	s := newNS(t, "S")
	serveFunc(t, s, "127.0.0.1:7000", func(c io.ReadWriter) { io.Copy(c, c) })
	dir := t.TempDir()
	cfg := writeFile(t, dir, "d.cfg", fmt.Sprintf(`
namespace_list
    namespace %[1]s
frontend host
    bind 127.0.0.1:19705
    default_backend echo
backend echo
    server s1 127.0.0.1:7000 namespace %[1]s
`, s))
	args := []string{"-f", cfg, "--socket", filepath.Join(dir, "ctl.sock"), "--state-file", "none", "--drain-timeout", "1s"}
	a := startDaemon(t, nil, args...)
	eventually(t, "old daemon serves", func() error { return shortConn(t, "", "127.0.0.1:19705") })
	idle, err := net.Dial("tcp", "127.0.0.1:19705")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(idle, "x\n")
	if _, err := bufio.NewReader(idle).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := startDaemon(t, nil, append(args, "--takeover")...)
	b.waitLog("takeover: the old daemon stopped accepting")
	if err := a.wait(10 * time.Second); err != nil {
		t.Fatalf("old daemon with an endless connection: %v", err)
	}
	took := time.Since(start)
	if !strings.Contains(a.logs(), "forced_closed=1") {
		t.Fatalf("old daemon did not force-close the endless connection:\n%s", a.logs())
	}
	idle.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("the endless connection is still open after the old daemon exited")
	}
	if err := shortConn(t, "", "127.0.0.1:19705"); err != nil {
		t.Fatalf("successor: %v", err)
	}
	t.Logf("old daemon exited %v after the takeover began (--drain-timeout 1s)", took.Round(10*time.Millisecond))
}
