package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// pidName is a namespace name of this test process: prefix, pid, tag.
func pidName(prefix, tag string) string { return fmt.Sprintf("%s%d%s", prefix, os.Getpid()%10000, tag) }

// TestConnectFailedNamesEveryAttempt: a connection whose attempts all fail
// logs one line naming the last server tried and its namespace, and an
// error listing every attempt with its server and namespace.
func TestConnectFailedNamesEveryAttempt(t *testing.T) {
	n1 := testns.Add(t, pidName("od", "a"))
	n2 := testns.Add(t, pidName("od", "b"))
	v := newEnv(t, n1, n2)
	bind := BindSpec{Addr: netip.MustParseAddrPort("127.0.0.1:20500")}
	// Nothing listens on 127.0.0.1:1 in either namespace: both refuse.
	if err := v.e.Apply(spec1(bind, BackendSpec{Balance: First, Servers: []ServerSpec{
		srv("s1", "127.0.0.1:1", n1), srv("s2", "127.0.0.1:1", n2)}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a connect_failed line", func() error {
		if c, err := v.dial("", bind.Addr.String()); err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Read(make([]byte, 1))
			c.Close()
		}
		if !strings.Contains(v.log.String(), "termination=connect_failed") {
			return fmt.Errorf("no connect_failed line yet")
		}
		return nil
	})
	var line string
	for _, l := range strings.Split(v.log.String(), "\n") {
		if strings.Contains(l, "msg=connection") && strings.Contains(l, "termination=connect_failed") {
			line = l
		}
	}
	for _, want := range []string{"server=s2 ", "server_netns=" + n2 + " ",
		`err="s1@` + n1 + ": dial tcp 127.0.0.1:1: connect: connection refused; s2@" + n2 +
			": dial tcp 127.0.0.1:1: connect: connection refused\""} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line lacks %s:\n%s", want, line)
		}
	}
}

// TestConnectErrorText: the error of a connection that found no server
// lists each attempt, and errors.Is sees each attempt's error.
func TestConnectErrorText(t *testing.T) {
	ce := &connectError{}
	ce.add(attemptError{server: "s1", netns: "default", err: syscall.ECONNREFUSED})
	ce.add(attemptError{server: "s2", netns: "blue", err: errors.New("i/o timeout")})
	if got, want := ce.Error(), "s1@default: connection refused; s2@blue: i/o timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(ce, syscall.ECONNREFUSED) {
		t.Error("errors.Is does not find the first attempt's error")
	}
	if last := ce.last(); last.server != "s2" || last.netns != "blue" {
		t.Errorf("last() = %+v, want s2@blue", last)
	}
}
