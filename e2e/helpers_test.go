//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cnins "github.com/containernetworking/plugins/pkg/ns"

	"github.com/nsproxy/nsproxy/internal/testlog"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/internal/testwait"
)

var seq atomic.Int64

func nsproxyBin(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e tests need root (network namespaces)")
	}
	b := os.Getenv("NSPROXY_BIN")
	if b == "" {
		t.Skip("NSPROXY_BIN is not set: run `make e2e`")
	}
	return b
}

func name(tag string) string {
	return fmt.Sprintf("nspe%d%s%d", os.Getpid()%10000, tag, seq.Add(1))
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	return testns.Run(t, args...)
}

// newNS creates a namespace with lo up, removed when the test ends. Its
// name carries the e2e prefix, so that .ci/run's sweep finds a crashed
// run's leftovers.
func newNS(t *testing.T, tag string) string {
	t.Helper()
	return testns.Add(t, name(tag))
}

// inNS runs f on a thread inside namespace ns ("" = own); sockets made
// by f stay in ns. The plugins library's ns.Do locks a fresh goroutine's
// thread, enters ns, and leaves the thread to die if it cannot return.
func inNS(t *testing.T, ns string, f func() error) error {
	t.Helper()
	if ns == "" {
		return f()
	}
	return cnins.WithNetNSPath("/var/run/netns/"+ns, func(cnins.NetNS) error { return f() })
}

func dialIn(t *testing.T, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(t, ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	return c, err
}

// serveTag runs a server inside ns: each connection gets tag+"\n", then echo.
func serveTag(t *testing.T, ns, addr, tag string) func() {
	t.Helper()
	return serveFunc(t, ns, addr, func(c io.ReadWriter) {
		io.WriteString(c, tag+"\n")
		io.Copy(c, c)
	})
}

// serveFunc runs a server inside ns calling handle for each connection.
// The returned func (also run at cleanup) stops it.
func serveFunc(t *testing.T, ns, addr string, handle func(io.ReadWriter)) func() {
	t.Helper()
	var ln net.Listener
	if err := inNS(t, ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %q: %v", addr, ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// conn is an open client connection that has read its tag.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

func (c *conn) echo(msg string) error {
	c.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c.c, msg+"\n"); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// open connects from ns to addr and returns the tag of the server.
func open(t *testing.T, ns, addr string) (*conn, string, error) {
	c, err := dialIn(t, ns, addr)
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	tag, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return &conn{c, r}, strings.TrimSpace(tag), nil
}

// ask connects, reads the tag, checks one echo and closes.
func ask(t *testing.T, ns, addr string) (string, error) {
	c, tag, err := open(t, ns, addr)
	if err != nil {
		return "", err
	}
	defer c.c.Close()
	return tag, c.echo("ping")
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testwait.For(t, 8*time.Second, what, f)
}

func expectTag(t *testing.T, ns, addr, want string) {
	t.Helper()
	eventually(t, fmt.Sprintf("connect to %s from %q", addr, ns), func() error {
		got, err := ask(t, ns, addr)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answered by %q, want %q", got, want)
		}
		return nil
	})
}

// daemon is a running nsproxy process.
type daemon struct {
	t      *testing.T
	socket string // control socket
	cmd    *exec.Cmd
	log    testlog.Buffer // its stdout and stderr
	done   chan struct{}
	err    error
}

func (d *daemon) logs() string { return d.log.String() }

// startDaemon runs `nsproxy run` with args; it is killed when the test ends.
func startDaemon(t *testing.T, prefix []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, done: make(chan struct{})}
	// Each daemon gets its own control socket and state file unless the
	// test chose them, so that tests never share run-time state.
	if !slices.Contains(args, "--socket") {
		dir := t.TempDir()
		args = append(args, "--socket", filepath.Join(dir, "ctl.sock"), "--state-file", filepath.Join(dir, "state.json"))
	}
	if !slices.Contains(args, "--attachment-dir") {
		args = append(args, "--attachment-dir", "none") // never replay the host's records
	}
	if i := slices.Index(args, "--socket"); i >= 0 {
		d.socket = args[i+1]
	}
	all := append(append(append([]string{}, prefix...), nsproxyBin(t), "run"), args...)
	d.cmd = exec.Command(all[0], all[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	// Own process group, so that cleanup also kills anything it started,
	// and a bounded wait for output pipes held by strays.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.WaitDelay = 2 * time.Second
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		if t.Failed() {
			t.Logf("nsproxy log:\n%s", d.logs())
		}
	})
	return d
}

func (d *daemon) waitLog(s string) {
	d.t.Helper()
	eventually(d.t, "log line "+s, func() error {
		if strings.Contains(d.logs(), s) {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited (%v) before logging %q", d.err, s)
		default:
		}
		return fmt.Errorf("not logged yet")
	})
}

func (d *daemon) signal(s syscall.Signal) { d.cmd.Process.Signal(s) }

// cli runs an nsproxy CLI command against this daemon's socket.
func (d *daemon) cli(args ...string) (string, error) {
	out, err := exec.Command(nsproxyBin(d.t), append(args, "--socket", d.socket)...).CombinedOutput()
	return string(out), err
}

func (d *daemon) wait(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return fmt.Errorf("daemon still running after %v", timeout)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// netnsDir makes a private netns directory where each alias names an
// existing namespace, so that configs can use fixed names (netns1, netns2)
// without touching /var/run/netns.
func netnsDir(t *testing.T, aliases map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for alias, ns := range aliases {
		p := writeFile(t, dir, alias, "")
		sh(t, "mount", "--bind", "/var/run/netns/"+ns, p)
		t.Cleanup(func() { exec.Command("umount", p).Run() })
	}
	return dir
}
