// Package testns creates throw-away network namespaces and veth pairs for
// tests, and removes them with t.Cleanup even when the test fails. Names
// from Name carry the "nspt" prefix and the test process id (e2e tests pass
// their own "nspe" names to Add), so that a crashed run's leftovers can be
// found and removed by .ci/run's sweep.
//
// It does more than containernetworking/plugins' testutils.NewNS, which is
// why it stays: NewNS names its namespaces cnitest-<random>, which neither
// says which project or process made them (a sweep could only delete every
// cnitest-* namespace on the machine, other projects' included) nor fits
// the 15-byte interface names the same Name gives veths and bridges; it
// leaves lo down, and tests here address namespaces by name (ip -n NAME,
// bind mounts of /var/run/netns/NAME), not by an open NetNS. To run code
// inside a namespace, tests use the plugins library's pkg/ns (e2e) or
// netns.Handle.Do.
package testns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

var seq atomic.Int64

// Prefix starts every namespace and link name this package makes.
const Prefix = "nspt"

// RequireRoot skips the test unless it runs as root with `ip` available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (run as root, as .ci/run does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command")
	}
}

// Name returns a fresh, short name unique to this process.
func Name(tag string) string {
	// Interface names are limited to 15 bytes: keep the name short.
	return fmt.Sprintf("%s%d%s%d", Prefix, os.Getpid()%10000, tag, seq.Add(1))
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// New creates a namespace named Name(tag) with lo up and deletes it on
// cleanup.
func New(t testing.TB, tag string) string {
	t.Helper()
	return Add(t, Name(tag))
}

// Add creates the namespace name (/var/run/netns/name) with lo up and
// deletes it on cleanup. The caller chooses the name: give it a prefix the
// sweep knows.
func Add(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { Delete(name) })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Delete removes a namespace; missing is fine.
func Delete(name string) {
	exec.Command("ip", "netns", "del", name).Run()
}

// Addr adds an address (CIDR) to lo inside ns, e.g. to give several
// namespaces the same IP.
func Addr(t testing.TB, ns, cidr string) {
	t.Helper()
	Run(t, "ip", "-n", ns, "addr", "add", cidr, "dev", "lo")
}

// Veth connects namespace a (address cidrA) and b (cidrB) with a veth pair;
// "" means the test's own (host) namespace. Links are removed on cleanup.
func Veth(t testing.TB, a, cidrA, b, cidrB string) {
	t.Helper()
	RequireRoot(t)
	la, lb := Name("a"), Name("b")
	Run(t, "ip", "link", "add", la, "type", "veth", "peer", "name", lb)
	t.Cleanup(func() { exec.Command("ip", "link", "del", la).Run() })
	place := func(link, ns, cidr string) {
		ipc := []string{"ip"}
		if ns != "" {
			Run(t, "ip", "link", "set", link, "netns", ns)
			ipc = append(ipc, "-n", ns)
			// Deleting the namespace deletes the link too.
		}
		Run(t, append(ipc, "addr", "add", cidr, "dev", link)...)
		Run(t, append(ipc, "link", "set", link, "up")...)
	}
	place(la, a, cidrA)
	place(lb, b, cidrB)
}

// Exec runs a command inside ns (ip netns exec) and returns its output.
func Exec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// ExhaustFDs lowers RLIMIT_NOFILE to the fds open now and fills any left,
// so that the next open, socket or dup fails with EMFILE, and returns the
// undo (also run at cleanup): the fillers closed, the limit restored.
func ExhaustFDs(t testing.TB) (undo func()) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(fds)) // ReadDir's own fd is closed again: one spare at most
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var filler []int
	for {
		fd, err := syscall.Dup(0)
		if err != nil {
			break
		}
		filler = append(filler, fd)
	}
	done := false
	undo = func() {
		if done {
			return
		}
		done = true
		for _, fd := range filler {
			syscall.Close(fd)
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	t.Cleanup(undo)
	return undo
}
