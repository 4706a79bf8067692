//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Host ports of TestContainerdCRI (the range 19600-19699 is this file's).
const (
	criPortAlpha    = 19600
	criPortBeta     = 19601
	criPortLoopback = 19602
	criPortClashA   = 19603
	criPortClashB   = 19604
)

// TestContainerdCRI drives containerd's CRI plugin with crictl, as kubelet
// would, with manifests/cni/containerd-nsproxy.conflist (private paths):
// hostPort pods are exposed on the host by the nsproxy daemon; the
// nsproxy.io/target annotation, the name template, pods whose templated
// names clash, a daemon killed and started again, a pod restarted, stopp
// and rmp (which must leave nothing behind).
func TestContainerdCRI(t *testing.T) {
	nsproxyBin(t)
	state := t.TempDir()
	recordDir := filepath.Join(state, "attachments")
	args := []string{"--socket", filepath.Join(state, "ctl.sock"), "--state-file", filepath.Join(state, "state.json"),
		"--attachment-dir", recordDir}
	d := emptyDaemon(t, args...)
	e := newCRIEnv(t, d.socket, recordDir)
	at := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	alpha := &criPod{Namespace: "team-a", Name: "alpha", HostPort: criPortAlpha}
	beta := &criPod{Namespace: "team-a", Name: "beta", HostPort: criPortBeta}
	lo := &criPod{Namespace: "team-a", Name: "lo", HostPort: criPortLoopback,
		Annotations: map[string]string{"nsproxy.io/target": "loopback"}}
	// {{.PodNamespace}}-{{.PodName}} gives team-b-web for both.
	clashA := &criPod{Namespace: "team-b", Name: "web", HostPort: criPortClashA}
	clashB := &criPod{Namespace: "team", Name: "b-web", HostPort: criPortClashB}

	t.Run("two hostPort pods at once", func(t *testing.T) {
		e.runPod(t, alpha, "0.0.0.0:80", "alpha")
		e.runPod(t, beta, "0.0.0.0:80", "beta")
		expectHTTP(t, at(criPortAlpha), "alpha")
		expectHTTP(t, at(criPortBeta), "beta")
	})

	t.Run("target loopback annotation", func(t *testing.T) {
		e.runPod(t, lo, "127.0.0.1:80", "loopback-only")
		expectHTTP(t, at(criPortLoopback), "loopback-only")
		// The server is on the pod's 127.0.0.1 only: its IP refuses.
		_, ip := e.podNet(t, lo.id)
		if err := connRefused(ip + ":80"); err != nil {
			t.Errorf("pod IP: %v (the app must listen on 127.0.0.1 only for this check to mean anything)", err)
		}
	})

	t.Run("name template", func(t *testing.T) {
		names := daemonNamespaceNames(t, d)
		for _, want := range []string{"team-a_alpha", "team-a_beta", "team-a_lo"} {
			if !slices.Contains(names, want) {
				t.Errorf("nsproxy get namespaces: no %q in %v", want, names)
			}
		}
	})

	clashOK := t.Run("pods whose names clash", func(t *testing.T) {
		e.runPod(t, clashA, "0.0.0.0:80", "team-b/web")
		e.runPod(t, clashB, "0.0.0.0:80", "team/b-web")
		expectHTTP(t, at(criPortClashA), "team-b/web")
		expectHTTP(t, at(criPortClashB), "team/b-web")
		// Both attachments are registered, under two different names.
		atts := daemonAttachments(t, d)
		var clash []string
		for _, a := range atts {
			if a.ContainerID == clashA.id || a.ContainerID == clashB.id {
				clash = append(clash, a.Name)
			}
		}
		if len(clash) != 2 || clash[0] == clash[1] {
			t.Errorf("attachments of the clashing pods have names %q, want two different ones", clash)
		}
		// Each is still reachable after the other's name was taken.
		expectHTTP(t, at(criPortAlpha), "alpha")
	})

	top := t // the restarted daemon lives until the whole test ends
	t.Run("daemon restart", func(t *testing.T) {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		eventually(t, "host port closed with the daemon", func() error { return connRefused(at(criPortAlpha)) })
		d = startDaemon(top, nil, append([]string{"-f", writeFile(t, top.TempDir(), "empty.cfg", "# attachments only\n")}, args...)...)
		d.waitLog("control socket listening")
		expectHTTP(t, at(criPortAlpha), "alpha")
		expectHTTP(t, at(criPortBeta), "beta")
		expectHTTP(t, at(criPortLoopback), "loopback-only")
		names := daemonNamespaceNames(t, d)
		for _, want := range []string{"team-a_alpha", "team-a_beta", "team-a_lo"} {
			if !slices.Contains(names, want) {
				t.Errorf("nsproxy get namespaces after the restart: no %q in %v", want, names)
			}
		}
		if clashOK {
			expectHTTP(t, at(criPortClashA), "team-b/web")
			expectHTTP(t, at(criPortClashB), "team/b-web")
		}
	})

	var alphaNetns string
	t.Run("stopp releases the port", func(t *testing.T) {
		alphaNetns, _ = e.podNet(t, alpha.id)
		e.stopPod(t, alpha)
		eventually(t, "host port released after stopp", func() error { return connRefused(at(criPortAlpha)) })
		expectHTTP(t, at(criPortBeta), "beta")
	})

	t.Run("pod restart", func(t *testing.T) {
		// As kubelet does: a new sandbox of the same pod (attempt 1) while
		// the stopped one still exists, then the old one goes.
		again := &criPod{Namespace: alpha.Namespace, Name: alpha.Name, Attempt: 1, HostPort: criPortAlpha}
		e.runPod(t, again, "0.0.0.0:80", "alpha-2")
		expectHTTP(t, at(criPortAlpha), "alpha-2")
		e.removePod(t, alpha)
		if pathExists(alphaNetns) {
			t.Errorf("netns %s of the removed sandbox still exists", alphaNetns)
		}
		expectHTTP(t, at(criPortAlpha), "alpha-2")
		if names := daemonNamespaceNames(t, d); !slices.Contains(names, "team-a_alpha") {
			t.Errorf("nsproxy get namespaces after the pod restart: no team-a_alpha in %v", names)
		}
		alpha = again
	})

	t.Run("rmp leaves nothing", func(t *testing.T) {
		for _, p := range []*criPod{alpha, beta, lo, clashA, clashB} {
			if p.id == "" { // its runp failed (reported above)
				continue
			}
			e.stopPod(t, p)
			e.removePod(t, p)
		}
		for _, port := range []int{criPortAlpha, criPortBeta, criPortLoopback, criPortClashA, criPortClashB} {
			eventually(t, fmt.Sprintf("port %d released", port), func() error { return connRefused(at(port)) })
		}
		eventually(t, "no attachments in the daemon", func() error {
			if atts := daemonAttachments(t, d); len(atts) > 0 {
				return fmt.Errorf("%d left: %+v", len(atts), atts)
			}
			return nil
		})
		if out := e.crictlMust(t, "pods", "-q"); out != "" {
			t.Errorf("crictl pods after rmp: %s", out)
		}
		if recs, _ := os.ReadDir(recordDir); len(recs) > 0 {
			t.Errorf("attachment records left: %v", recs)
		}
		if l := e.leases(); len(l) > 0 {
			t.Errorf("IPAM leases left: %v", l)
		}
		if r := e.cniResults(); len(r) > 0 {
			t.Errorf("libcni results left: %v", r)
		}
		for ns := range e.netnses {
			if pathExists(ns) {
				t.Errorf("netns %s left", ns)
			}
		}
		if p := e.bridgePorts(); p != "" {
			t.Errorf("veths left on %s:\n%s", e.bridge, p)
		}
		if e.rulesRun == 0 {
			t.Errorf("no iptables rule about the pods was seen while they ran: the leak check below would miss leaks")
		}
		t.Logf("iptables: up to %d rules and %d chains about the pods while they ran", e.rulesRun, len(e.chains))
		if leaks := e.iptablesLeaks(t); len(leaks) > 0 {
			// firewall's CNI-FORWARD pair outlives a failed ADD: containerd's
			// cleanup DEL carries no prevResult (see an ADD error above).
			t.Errorf("iptables rules left:\n%s", strings.Join(leaks, "\n"))
		}
	})
}

// criAttachment is the part of `nsproxy get attachments -o json` the test reads.
type criAttachment struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifname"`
	Name        string   `json:"name"`
	Netns       string   `json:"netns"`
	Exposed     []string `json:"exposed"`
	Problems    []string `json:"problems"`
}

func daemonAttachments(t *testing.T, d *daemon) []criAttachment {
	t.Helper()
	var v []criAttachment
	daemonJSON(t, d, &v, "get", "attachments", "-o", "json")
	return v
}

func daemonNamespaceNames(t *testing.T, d *daemon) []string {
	t.Helper()
	var v []struct {
		Name string `json:"name"`
	}
	daemonJSON(t, d, &v, "get", "namespaces", "-o", "json")
	var names []string
	for _, n := range v {
		names = append(names, n.Name)
	}
	return names
}

// daemonJSON decodes a CLI list: a JSON array, or an object with "items".
func daemonJSON(t *testing.T, d *daemon, v any, args ...string) {
	t.Helper()
	out, err := d.cli(args...)
	if err != nil {
		t.Fatalf("nsproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		var w struct {
			Items json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &w); err == nil && w.Items != nil {
			out = string(w.Items)
		}
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("nsproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
