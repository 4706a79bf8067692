package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a test-owned datagram socket standing in for systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	abstract := fmt.Sprintf("@nsproxy-sdnotify-test-%d", os.Getpid())
	for _, socket := range []string{path, abstract} {
		t.Run(socket, func(t *testing.T) {
			c := listen(t, socket)
			n, err := New(socket)
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("not enabled")
			}
			if err := n.Notify(MainPID(42), Ready); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, c); got != "MAINPID=42\nREADY=1\n" {
				t.Fatalf("got %q", got)
			}
			if err := n.Notify(ReloadingNow()...); err != nil {
				t.Fatal(err)
			}
			got := receive(t, c)
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(got, "=0\n") {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestNotifyDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() || n.Notify(Ready) != nil {
		t.Fatal("a notifier without a socket must do nothing")
	}
	var nilN *Notifier
	if nilN.Notify(Ready) != nil {
		t.Fatal("nil notifier")
	}
}

func TestNotifyNoListener(t *testing.T) {
	n, _ := New(filepath.Join(t.TempDir(), "gone.sock"))
	if err := n.Notify(Ready); err == nil {
		t.Fatal("want an error when nobody listens")
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err bool
	}{
		{"", false}, {"/run/systemd/notify", false}, {"@abstract", false},
		{"@", true}, {"relative/path", true}, {"notify", true},
	} {
		_, err := New(tc.in)
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrBadSocket)) {
			t.Errorf("New(%q) = %v, want error %v", tc.in, err, tc.err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, false},
		{"2000000", "7", time.Second, false},
		{"2000000", "8", 0, false}, // meant for another process (the old daemon)
		{"0", "", 0, true},
		{"-1", "", 0, true},
		{"abc", "", 0, true},
		{"100", "x", 0, true},
		{"99999999999999999999999", "", 0, true},
	} {
		got, err := watchdogInterval(tc.usec, tc.pid, 7)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, error %v", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}

func TestRunWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wd.sock")
	c := listen(t, path)
	n, _ := New(path)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { n.RunWatchdog(stop, 10*time.Millisecond); close(done) }()
	for range 2 {
		if got := receive(t, c); got != "WATCHDOG=1\n" {
			t.Fatalf("got %q", got)
		}
	}
	close(stop)
	<-done
}

func FuzzWatchdogInterval(f *testing.F) {
	for _, s := range []string{"", "0", "1", "2000000", "-5", "1e9", "18446744073709551616"} {
		f.Add(s, "")
		f.Add(s, "1")
	}
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, err := watchdogInterval(usec, pid, 1)
		if err != nil && d != 0 {
			t.Fatalf("error with a period %v", d)
		}
		if d < 0 {
			t.Fatalf("negative period %v", d)
		}
	})
}

func FuzzNew(f *testing.F) {
	for _, s := range []string{"", "@", "@x", "/run/x", "x", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := New(s)
		if err == nil && n == nil {
			t.Fatal("nil notifier without error")
		}
	})
}
