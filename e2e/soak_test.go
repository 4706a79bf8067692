//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Host-namespace ports of the soak test (its range is 19300–19499).
const (
	soakShort   = "127.0.0.1:19300" // short and keep-alive connections → tagged echo servers in S
	soakBulk    = "127.0.0.1:19301" // bulk streams → echo servers in S
	soakProxy   = "127.0.0.1:19302" // accept-proxy → send-proxy-v2 → a server in S that reports the source
	soakVol     = "127.0.0.1:19303" // → a server in V, the namespace deleted and recreated under traffic
	soakExtra   = "127.0.0.1:19304" // a frontend that exists in every other configuration
	soakMetrics = "127.0.0.1:19309"
)

// Growth bounds of TestSoak, compared between a sample after a warm-up
// phase and one after the soak, both taken with no connection open.
const (
	// soakRSSSlack is the RSS growth allowed on top of soakRSSFactor ×
	// the warm-up RSS: the Go heap may grow to twice its live size before a
	// collection and the runtime returns freed pages to the kernel only
	// minutes later, so a settled daemon's RSS wanders by a few MiB. A leak
	// of even 1 KiB per connection over the soak's tens of thousands of
	// connections is well beyond it.
	soakRSSSlack  = 16 << 20
	soakRSSFactor = 1.5
	// soakPipeFDsPerConn: pipes for splice(2) are pooled and closed only
	// when the pool lets them go (Go's own pool: after two garbage
	// collections, which an idle daemon does not run), so pipe fds are
	// allowed to exceed the warm-up by one pipe (two fds) per direction of
	// every connection the soak can hold open at once. Every other kind of
	// fd (sockets, namespaces, epoll, files) must come back to its warm-up
	// count exactly; sockets are counted without those the engine pools
	// ahead in other namespaces (nsproxy_pooled_sockets), whose number
	// follows the pool's refills.
	soakPipeFDsPerConn = 2 * 2
)

// TestSoak drives one daemon with mixed traffic for 60 s (-short: 15 s;
// NSPROXY_SOAK_DURATION=90s sets it): short connections, keep-alive
// echoes, paced 16–64 MiB bulk streams echoed and compared by SHA-256,
// PROXY v1 and v2 in (accept-proxy) and v2 out (send-proxy-v2, the source
// checked at the server), a server namespace deleted and recreated every
// few seconds, and a SIGHUP reload every two seconds that switches between
// two configurations. Established connections must survive every reload,
// the stable routes must not fail once, and the recreated namespace must
// serve again. At the end the daemon must hold no more goroutines and fds
// than after the warm-up, and its RSS must stay within the bound above.
func TestSoak(t *testing.T) {
	nsproxyBin(t)
	dur := 60 * time.Second
	if testing.Short() {
		dur = 15 * time.Second
	}
	if v := os.Getenv("NSPROXY_SOAK_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil || dur < 5*time.Second {
			t.Fatalf("NSPROXY_SOAK_DURATION=%q: give a Go duration of at least 5s (e.g. 90s)", v)
		}
	}
	warm := min(max(dur/6, 6*time.Second), 10*time.Second)

	s := newSoak(t)
	s.phase("warm-up", warm)
	base := s.settled("after the warm-up")
	s.reset()
	s.phase("soak", dur)
	s.checkTraffic()
	s.checkGrowth(base)
	s.checkCounters()
	if strings.Contains(s.d.logs(), "reload refused") || strings.Contains(s.d.logs(), "panic") {
		t.Errorf("the daemon refused a reload or panicked; see its log")
	}
}

// soak is the daemon under test, its servers and what the traffic saw.
type soak struct {
	t        *testing.T
	d        *daemon
	dir      string // the configuration's directory
	srv, vol string // namespaces: stable servers, the volatile one
	stopVol  func()
	gen      int // which of the two configurations runs
	reloads  atomic.Int64
	start    time.Time

	mu      sync.Mutex
	ok      map[string]int
	failed  map[string]int
	errs    map[string][]string // the first few errors of each kind
	crossed int                 // bulk streams during which a reload happened
	bulkMiB int
	// bulkBytes is the payload of every plain bulk stream the daemon has
	// seen since it started, each way; bulkFailed counts the failed ones.
	bulkBytes, bulkFailed int
}

func newSoak(t *testing.T) *soak {
	s := &soak{t: t, dir: t.TempDir(), srv: newNS(t, "S"), vol: newNS(t, "V")}
	serveTag(t, s.srv, "127.0.0.1:80", "S")
	serveTag(t, s.srv, "127.0.0.1:81", "S2")
	for _, a := range []string{"127.0.0.1:9000", "127.0.0.1:9001"} {
		serveFunc(t, s.srv, a, func(c io.ReadWriter) { io.Copy(c, c) })
	}
	serveFunc(t, s.srv, "127.0.0.1:9100", serveProxySource)
	s.stopVol = serveTag(t, s.vol, "127.0.0.1:80", "V")
	s.writeConfig()
	// At warn the log holds what went wrong (a failed test prints it), not
	// a line for each of the soak's tens of thousands of connections.
	s.d = startDaemon(t, nil, "-f", s.dir+"/soak.cfg", "--metrics-addr", soakMetrics, "--log-level", "warn")
	for _, a := range []string{soakShort, soakVol} { // the tagged routes
		eventually(t, "listener "+a, func() error { _, err := ask(t, "", a); return err })
	}
	if metric(t, soakMetrics, "go_goroutines") < 0 {
		t.Fatal("the metrics endpoint has no go_goroutines: the Go collector must be registered")
	}
	s.reset()
	return s
}

// serveProxySource reads the PROXY v2 header nsproxy sends, answers with
// the source address it carries, then echoes.
func serveProxySource(c io.ReadWriter) {
	fixed := make([]byte, 16)
	if _, err := io.ReadFull(c, fixed); err != nil {
		return
	}
	body := make([]byte, binary.BigEndian.Uint16(fixed[14:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return
	}
	if fixed[13] != 0x11 || len(body) < 12 { // TCP over IPv4
		fmt.Fprintf(c, "bad header % x\n", fixed)
		return
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:]))
	fmt.Fprintf(c, "src=%s\n", src)
	io.Copy(c, c)
}

// writeConfig writes configuration s.gen: the odd one adds a second server
// to the short and bulk backends and a frontend, so that every reload
// changes backends and listeners while connections are established.
func (s *soak) writeConfig() {
	second := func(line string) string {
		if s.gen == 1 {
			return line
		}
		return ""
	}
	writeFile(s.t, s.dir, "soak.cfg", fmt.Sprintf(`
defaults
    mode tcp
    timeout connect 2s

frontend fe_short
    bind %[1]s
    default_backend be_short
backend be_short
    server s1 127.0.0.1:80 namespace %[6]s
    %[8]s

frontend fe_bulk
    bind %[2]s
    default_backend be_bulk
backend be_bulk
    server b1 127.0.0.1:9000 namespace %[6]s
    %[9]s

frontend fe_proxy
    bind %[3]s accept-proxy
    default_backend be_proxy
backend be_proxy
    server p1 127.0.0.1:9100 namespace %[6]s send-proxy-v2

frontend fe_vol
    bind %[4]s
    default_backend be_vol
backend be_vol
    timeout check 300ms
    server v1 127.0.0.1:80 namespace %[7]s check inter 300ms rise 1 fall 1
%[10]s`, soakShort, soakBulk, soakProxy, soakVol, soakExtra, s.srv, s.vol,
		second("server s2 127.0.0.1:81 namespace "+s.srv),
		second("server b2 127.0.0.1:9001 namespace "+s.srv),
		second("frontend fe_extra\n    bind "+soakExtra+"\n    default_backend be_short\n")))
}

// reload switches to the other configuration and waits until the daemon
// has applied it.
func (s *soak) reload() {
	s.t.Helper()
	s.alive()
	s.gen ^= 1
	s.writeConfig()
	before := metric(s.t, soakMetrics, "nsproxy_reconcile_duration_seconds_count")
	s.d.signal(syscall.SIGHUP)
	eventually(s.t, fmt.Sprintf("reload to configuration %d applied", s.gen), func() error {
		if n := metric(s.t, soakMetrics, "nsproxy_reconcile_duration_seconds_count"); n <= before {
			return fmt.Errorf("reconcile passes: %v, was %v (reload refused? see the log)", n, before)
		}
		return nil
	})
	s.reloads.Add(1)
}

// phase runs every kind of traffic for d while the main goroutine reloads
// every 2 s and deletes and recreates the server namespace every ~5 s.
func (s *soak) phase(name string, d time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	work := func(n int, f func(ctx context.Context, w int)) {
		for w := range n {
			wg.Add(1)
			go func() { defer wg.Done(); f(ctx, w) }()
		}
	}
	s.start = time.Now()
	work(2, s.shortConns)
	work(2, s.keepAlive)
	work(1, s.proxyConns)
	work(2, s.bulk)
	work(1, s.volatile)
	end := time.Now().Add(d)
	pause := func(p time.Duration) bool {
		time.Sleep(min(p, time.Until(end)))
		return time.Now().Before(end)
	}
	cycles := 0
	for {
		s.reload()
		if !pause(2 * time.Second) {
			break
		}
		// Connections to V fail from here until it is back.
		s.stopVol()
		sh(s.t, "ip", "netns", "del", s.vol)
		time.Sleep(time.Second)
		s.reload()
		sh(s.t, "ip", "netns", "add", s.vol)
		sh(s.t, "ip", "-n", s.vol, "link", "set", "lo", "up")
		s.stopVol = serveTag(s.t, s.vol, "127.0.0.1:80", "V")
		cycles++
		expectTag(s.t, "", soakVol, "V") // after it is back it must serve again
		if !pause(2 * time.Second) {
			break
		}
	}
	if s.gen != 0 {
		s.reload() // end in the configuration the phases are compared in
	}
	cancel()
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Logf("%s, %v: %d reloads, %d namespace cycles; ok %v; failed %v; bulk %d MiB, %d streams crossed a reload",
		name, d, s.reloads.Load(), cycles, s.ok, s.failed, s.bulkMiB, s.crossed)
}

func (s *soak) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok, s.failed, s.errs, s.crossed, s.bulkMiB = map[string]int{}, map[string]int{}, map[string][]string{}, 0, 0
	s.reloads.Store(0)
}

// done counts one operation of a kind of traffic.
func (s *soak) done(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ok[kind]++
		return
	}
	s.failed[kind]++
	if len(s.errs[kind]) < 5 {
		s.errs[kind] = append(s.errs[kind], fmt.Sprintf("at %.1fs (reload %d): %v",
			time.Since(s.start).Seconds(), s.reloads.Load(), err))
	}
}

// shortConns: connect, read the tag, one echo, close (HTTP-close style).
func (s *soak) shortConns(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		tag, err := ask(s.t, "", soakShort)
		if err == nil && tag != "S" && tag != "S2" {
			err = fmt.Errorf("answered by %q", tag)
		}
		s.done("short", err)
		time.Sleep(time.Millisecond)
	}
}

// keepAlive: one connection for 5 s of back-to-back echoes, so that each
// spans reloads, then the next.
func (s *soak) keepAlive(ctx context.Context, w int) {
	for ctx.Err() == nil {
		c, _, err := open(s.t, "", soakShort)
		if err != nil {
			s.done("keep-alive", fmt.Errorf("connect: %w", err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		opened, reloads := time.Now(), s.reloads.Load()
		for i := 0; ctx.Err() == nil && time.Since(opened) < 5*time.Second; i++ {
			if err := c.echo(fmt.Sprintf("ka%d-%d", w, i)); err != nil {
				s.done("keep-alive", fmt.Errorf("echo %d of a connection %v old, %d reloads after it opened: %w",
					i, time.Since(opened).Round(time.Millisecond), s.reloads.Load()-reloads, err))
				break
			}
			s.done("keep-alive", nil)
		}
		c.c.Close()
	}
}

// proxyConns: a PROXY v1 or v2 header from a made-up client in; the
// server behind send-proxy-v2 must report that client as the source.
func (s *soak) proxyConns(ctx context.Context, _ int) {
	dst := netip.MustParseAddrPort(soakProxy)
	for i := 0; ctx.Err() == nil; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)}), uint16(10000+i%50000))
		hdr := v2Header(src, dst, "")
		kind := "proxy-v2"
		if i%2 == 0 {
			kind = "proxy-v1"
			hdr = fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", src.Addr(), dst.Addr(), src.Port(), dst.Port())
		}
		c, err := proxyHello(soakProxy, hdr, src)
		if err == nil {
			c.c.Close()
		}
		s.done(kind, err)
		time.Sleep(time.Millisecond)
	}
}

// proxyHello connects to addr, sends hdr and checks the server saw src.
// It returns the open connection and its reader (nil on error).
func proxyHello(addr string, hdr []byte, src netip.AddrPort) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	if _, err = c.Write(hdr); err == nil {
		var line string
		if line, err = r.ReadString('\n'); err == nil && line != "src="+src.String()+"\n" {
			err = fmt.Errorf("server saw %q, want src=%s", line, src)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &conn{c, r}, nil
}

// bulk: streams of 16, 32 and 64 MiB echoed back, paced so that most span
// a reload; worker 0 goes through fe_bulk, worker 1 through the PROXY
// route. Each must come back byte for byte.
func (s *soak) bulk(ctx context.Context, w int) {
	sizes := []int{16 << 20, 32 << 20, 64 << 20}
	for i := 0; ctx.Err() == nil; i++ {
		size := sizes[(i+w)%len(sizes)]
		reloads := s.reloads.Load()
		var c *conn
		var err error
		if w == 0 {
			var nc net.Conn
			if nc, err = net.DialTimeout("tcp", soakBulk, 3*time.Second); err == nil {
				c = &conn{nc, bufio.NewReader(nc)}
			}
		} else {
			src := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(20000+i))
			c, err = proxyHello(soakProxy, v2Header(src, netip.MustParseAddrPort(soakProxy), ""), src)
		}
		if err == nil {
			err = echoStream(c, size, uint64(w)<<32|uint64(i), 24<<20)
			c.c.Close()
		}
		kind := []string{"bulk", "bulk-proxy"}[w]
		if err != nil {
			err = fmt.Errorf("%d MiB stream: %w", size>>20, err)
		}
		s.done(kind, err)
		s.mu.Lock()
		if w == 0 {
			s.bulkBytes += size
			if err != nil {
				s.bulkFailed++
			}
		}
		if err == nil {
			s.bulkMiB += size >> 20
			if s.reloads.Load() != reloads {
				s.crossed++
			}
		}
		s.mu.Unlock()
	}
}

// echoStream sends size pseudo-random bytes (seeded) at about pace bytes/s,
// half-closes, and checks that the echo that comes back has the same length
// and SHA-256.
func echoStream(c *conn, size int, seed uint64, pace int) error {
	tc := c.c.(*net.TCPConn)
	tc.SetDeadline(time.Now().Add(time.Duration(size/pace)*time.Second + 30*time.Second))
	sent := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		defer func() { sent <- h.Sum(nil) }()
		src := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 4: byte(seed >> 32)})
		buf := make([]byte, 256<<10)
		start := time.Now()
		for n := 0; n < size; n += len(buf) {
			src.Read(buf)
			h.Write(buf)
			if _, err := tc.Write(buf); err != nil {
				return // the reader reports the short stream
			}
			if ahead := time.Duration(float64(n+len(buf))/float64(pace)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		tc.CloseWrite()
	}()
	h := sha256.New()
	got, err := io.Copy(h, c.r)
	want := <-sent
	switch {
	case err != nil:
		return fmt.Errorf("after %d bytes back: %w", got, err)
	case got != int64(size):
		return fmt.Errorf("%d bytes came back, want %d", got, size)
	case !slices.Equal(h.Sum(nil), want):
		return errors.New("the bytes that came back differ from those sent (SHA-256)")
	}
	return nil
}

// volatile: connections to the server in V, which fail while V is gone.
func (s *soak) volatile(ctx context.Context, _ int) {
	for ctx.Err() == nil {
		tag, err := ask(s.t, "", soakVol)
		if err == nil && tag != "V" {
			err = fmt.Errorf("answered by %q", tag)
		}
		s.done("volatile", err) // failures are expected while V is gone
		time.Sleep(20 * time.Millisecond)
	}
}

// checkTraffic: every kind of traffic ran, and none failed on the stable
// routes.
func (s *soak) checkTraffic() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kind := range []string{"short", "keep-alive", "proxy-v1", "proxy-v2", "bulk", "bulk-proxy", "volatile"} {
		if s.ok[kind] == 0 {
			s.t.Errorf("%s: no operation succeeded", kind)
		}
		if n := s.failed[kind]; n > 0 && kind != "volatile" {
			s.t.Errorf("%s: %d of %d failed; first:\n\t%s", kind, n, n+s.ok[kind], strings.Join(s.errs[kind], "\n\t"))
		}
	}
	if s.reloads.Load() >= 4 && s.crossed == 0 {
		s.t.Errorf("no bulk stream was open during a reload: the test does not test what it claims")
	}
}

// checkCounters: the bulk frontend's byte counters, kept across every
// reload, add up to the payload of the streams exactly (nothing else goes
// through fe_bulk).
func (s *soak) checkCounters() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bulkFailed > 0 {
		return // a failed stream's bytes are unknown; checkTraffic reported it
	}
	for _, dir := range []string{"in", "out"} {
		series := fmt.Sprintf(`nsproxy_frontend_bytes_%s_total{frontend="fe_bulk",tenant="default"}`, dir)
		if got := metric(s.t, soakMetrics, series); got != float64(s.bulkBytes) {
			s.t.Errorf("%s = %.0f, want %d (the payload of every bulk stream)", series, got, s.bulkBytes)
		}
	}
}

// soakSample is what the daemon holds with no connection open.
type soakSample struct {
	goroutines, rss, heap float64
	fds                   map[string]int // by kind: socket, pipe, net (namespace), anon_inode:[eventpoll], file...
}

func (a soakSample) String() string {
	var kinds []string
	for k, n := range a.fds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%v goroutines, RSS %.1f MiB, heap in use %.1f MiB, fds: %s",
		a.goroutines, a.rss/(1<<20), a.heap/(1<<20), strings.Join(kinds, ", "))
}

// alive fails the test at once if the daemon has exited.
func (s *soak) alive() {
	s.t.Helper()
	select {
	case <-s.d.done:
		s.t.Fatalf("the daemon exited during the soak: %v", s.d.err)
	default:
	}
}

func (s *soak) sample() soakSample {
	s.t.Helper()
	s.alive()
	fds := map[string]int{}
	pid := s.d.cmd.Process.Pid
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		s.t.Fatalf("daemon fds: %v", err)
	}
	for _, e := range ents {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		kind, _, _ := strings.Cut(link, ":[")
		if kind == "anon_inode" {
			kind = link
		} else if strings.HasPrefix(link, "/") {
			kind = "file"
		}
		fds[kind]++
	}
	// Sockets pooled ahead in other namespaces (at most 256, refilled as
	// connections take them) belong to the pool, not to a connection.
	fds["socket"] -= int(metric(s.t, soakMetrics, "nsproxy_pooled_sockets"))
	return soakSample{
		goroutines: metric(s.t, soakMetrics, "go_goroutines"),
		rss:        metric(s.t, soakMetrics, "process_resident_memory_bytes"),
		heap:       metric(s.t, soakMetrics, "go_memstats_heap_inuse_bytes"),
		fds:        fds,
	}
}

// settled waits until no connection is open and the goroutine and fd
// counts have held still for a second, and returns that sample.
func (s *soak) settled(when string) soakSample {
	s.t.Helper()
	var last soakSample
	var since time.Time
	eventuallyFor(s.t, 20*time.Second, "the daemon settles "+when, func() error {
		if n := metric(s.t, soakMetrics, "nsproxy_connections_current"); n != 0 {
			return fmt.Errorf("%v connections still open", n)
		}
		cur := s.sample()
		if cur.goroutines != last.goroutines || !maps.Equal(cur.fds, last.fds) {
			last, since = cur, time.Now()
			return fmt.Errorf("still moving: %v", cur)
		}
		if time.Since(since) < time.Second {
			return fmt.Errorf("steady for only %v: %v", time.Since(since), cur)
		}
		return nil
	})
	s.t.Logf("settled %s: %v", when, last)
	return last
}

// checkGrowth compares the settled daemon with the warm-up sample.
func (s *soak) checkGrowth(base soakSample) {
	s.t.Helper()
	const maxOpen = 2 + 2 + 1 + 2 + 1 // connections the workers hold at once
	var grew []string
	var end soakSample
	// Goroutines and fds of connections that just closed need a moment.
	eventuallyFor(s.t, 20*time.Second, "no growth", func() error {
		end = s.sample()
		grew = nil
		if end.goroutines > base.goroutines {
			grew = append(grew, fmt.Sprintf("goroutines %v → %v", base.goroutines, end.goroutines))
		}
		for kind, n := range end.fds {
			allowed := base.fds[kind]
			if kind == "pipe" {
				allowed += soakPipeFDsPerConn * maxOpen
			}
			if n > allowed {
				grew = append(grew, fmt.Sprintf("%s fds %d → %d (allowed %d)", kind, base.fds[kind], n, allowed))
			}
		}
		if n := metric(s.t, soakMetrics, "nsproxy_connections_current"); n != 0 {
			grew = append(grew, fmt.Sprintf("%v connections still open", n))
		}
		if len(grew) > 0 {
			return fmt.Errorf("%s\n\tafter the warm-up: %v\n\tafter the soak:   %v", strings.Join(grew, "; "), base, end)
		}
		return nil
	})
	limit := soakRSSFactor*base.rss + soakRSSSlack
	if end.rss > limit {
		s.t.Errorf("RSS grew from %.1f MiB after the warm-up to %.1f MiB (bound %.1f MiB = %.1f × warm-up + %d MiB); heap in use %.1f → %.1f MiB",
			base.rss/(1<<20), end.rss/(1<<20), limit/(1<<20), soakRSSFactor, soakRSSSlack>>20, base.heap/(1<<20), end.heap/(1<<20))
	}
	s.t.Logf("after the soak: %v", end)
}
