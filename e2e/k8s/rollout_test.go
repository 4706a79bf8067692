//go:build e2ek8s

package k8s

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// load counts the short connections of the load generator.
type load struct {
	ok, refused, failed atomic.Int64
	mu                  sync.Mutex
	firstErr            error
	maxLatency          time.Duration
	ends                []time.Time
}

func (l *load) record(start time.Time, err error) {
	lat := time.Since(start)
	switch {
	case err == nil:
		l.ok.Add(1)
	case errors.Is(err, syscall.ECONNREFUSED):
		l.refused.Add(1)
	default:
		l.failed.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && l.firstErr == nil {
		l.firstErr = err
	}
	if err == nil {
		l.maxLatency = max(l.maxLatency, lat)
		l.ends = append(l.ends, time.Now())
	}
}

// maxGap is the longest time in [from, to] in which no connection
// completed: the accept pause the clients saw.
func (l *load) maxGap(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ends := slices.Clone(l.ends)
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	prev := from
	for _, e := range ends {
		if e.Before(from) || e.After(to) {
			continue
		}
		gap = max(gap, e.Sub(prev))
		prev = e
	}
	return max(gap, to.Sub(prev))
}

// stream holds a connection to the echo port for d, sending a line every
// 20ms and checking each echo.
func stream(a string, d time.Duration) (lines int, err error) {
	c, err := net.DialTimeout("tcp", a, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for end := time.Now().Add(d); time.Now().Before(end); lines++ {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := fmt.Sprintf("line %d %s\n", lines, strings.Repeat("x", 100))
		if _, err := io.WriteString(c, msg); err != nil {
			return lines, fmt.Errorf("write after %d lines: %w", lines, err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("read after %d lines: %w", lines, err)
		}
		if got != msg {
			return lines, fmt.Errorf("echo %q, want %q", got, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return lines, nil
}

// TestRollingUpdate: `kubectl set image` of the DaemonSet to another
// image (maxSurge: the new pod takes the listeners over from the old one
// through the shared socket) under a constant load of short connections
// on two hostPorts and of streams on a third refuses no connection, fails
// none and cuts no stream that ends within the old daemon's drain time.
func TestRollingUpdate(t *testing.T) {
	ensureDaemonSet(t)
	ensureApps(t)
	imgA, imgB := env(t, "NSPROXY_K8S_IMAGE_A"), env(t, "NSPROXY_K8S_IMAGE_B")
	before := pods(t, "-n", dsNS)
	if len(before.Items) != 1 || before.Items[0].Spec.Containers[0].Image != imgA {
		t.Fatalf("want one nsproxy pod on %s before the update", imgA)
	}
	oldPod := before.Items[0].Metadata.Name

	var short load
	var streams, streamLines atomic.Int64
	var streamErrs []error
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		port := []int{portHTTP, portEcho}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				short.record(start, probe(port))
			}
		}()
	}
	// A stream of 3s starts every 500ms: many are established across
	// the hand-over and end within the old daemon's drain (10s).
	wg.Add(1)
	go func() {
		defer wg.Done()
		var swg sync.WaitGroup
		defer swg.Wait()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			swg.Add(1)
			go func() {
				defer swg.Done()
				n, err := stream(addr(portEcho), 3*time.Second)
				streams.Add(1)
				streamLines.Add(int64(n))
				if err != nil {
					mu.Lock()
					streamErrs = append(streamErrs, err)
					mu.Unlock()
				}
			}()
		}
	}()

	time.Sleep(3 * time.Second)
	from := time.Now()
	kubectl(t, "-n", dsNS, "set", "image", "ds/nsproxy", "nsproxy="+imgB, "install-cni="+imgB)
	if out, err := kubectlRun(t, "", "-n", dsNS, "rollout", "status", "ds/nsproxy", "--timeout=300s"); err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("rollout: %v\n%s\n%s", err, out, describe(t))
	}
	eventually(t, 90*time.Second, "the old pod is gone", func() error {
		for _, p := range pods(t, "-n", dsNS).Items {
			if p.Metadata.Name == oldPod {
				return fmt.Errorf("%s still exists", oldPod)
			}
		}
		return nil
	})
	to := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	after := pods(t, "-n", dsNS)
	if len(after.Items) != 1 || after.Items[0].Spec.Containers[0].Image != imgB {
		t.Errorf("after the update: %d pods, want one on %s", len(after.Items), imgB)
	}
	gap := short.maxGap(from, to)
	t.Logf("rolling update %s -> %s: %.1fs; short connections: %d ok, %d refused, %d failed (first error: %v); "+
		"longest connect+answer %v, longest time without a completed connection %v; "+
		"streams of 3s: %d (%d lines echoed), %d cut",
		imgA, imgB, to.Sub(from).Seconds(), short.ok.Load(), short.refused.Load(), short.failed.Load(), short.firstErr,
		short.maxLatency.Round(time.Millisecond), gap.Round(time.Millisecond), streams.Load(), streamLines.Load(), len(streamErrs))
	if short.refused.Load() != 0 || short.failed.Load() != 0 {
		t.Errorf("%d connections refused, %d failed during the rolling update (first: %v)",
			short.refused.Load(), short.failed.Load(), short.firstErr)
	}
	if len(streamErrs) > 0 {
		t.Errorf("%d of %d streams cut, first: %v", len(streamErrs), streams.Load(), streamErrs[0])
	}
	if short.ok.Load() == 0 || streams.Load() == 0 {
		t.Errorf("no load went through")
	}
	// The new daemon serves, and knows every pod.
	for _, p := range []int{portHTTP, portLoopback, portEcho} {
		if err := probe(p); err != nil {
			t.Errorf("port %d after the update: %v", p, err)
		}
	}
	if err := echoOnce(addr(portProxy), true); err != nil {
		t.Errorf("port %d after the update: %v", portProxy, err)
	}
	if out, err := cli(t, "get", "namespaces"); err != nil || !strings.Contains(out, "web_web-http-") {
		t.Errorf("get namespaces after the update: %v\n%s", err, out)
	}
}

// TestDeletePodReleasesPort: deleting a pod releases its host port by the
// time kubectl delete returns.
func TestDeletePodReleasesPort(t *testing.T) {
	ensureDaemonSet(t)
	apply(t, fmt.Sprintf(namespaceNS, "web"))
	apply(t, bare("web", "release", portRelease, httpScript))
	kubectl(t, "-n", "web", "wait", "--for=condition=Ready", "pod/release", "--timeout=120s")
	eventually(t, 30*time.Second, "the pod's port answers", func() error { return probe(portRelease) })
	start := time.Now()
	kubectl(t, "-n", "web", "delete", "pod", "release", "--wait=true")
	took := time.Since(start)
	if err := refused(portRelease); err != nil {
		t.Errorf("right after kubectl delete (%v): %v", took.Round(time.Millisecond), err)
	}
	if out, _ := cli(t, "get", "namespaces"); strings.Contains(out, "web_release ") {
		t.Errorf("web_release still registered:\n%s", out)
	}
}

// TestDaemonSetRecreated: without the DaemonSet, pods start normally (the
// plugin succeeds without a daemon and records the attachment); the
// re-created DaemonSet replays the records and serves their ports.
func TestDaemonSetRecreated(t *testing.T) {
	ensureDaemonSet(t)
	ensureApps(t)
	kubectl(t, "-n", dsNS, "delete", "ds/nsproxy", "--wait=true")
	eventually(t, 90*time.Second, "the daemon's pods are gone", func() error {
		if n := len(pods(t, "-n", dsNS).Items); n > 0 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	eventually(t, 10*time.Second, "nothing listens on the hostPorts", func() error { return refused(portHTTP) })

	recDir := filepath.Join(env(t, "NSPROXY_K8S_STATE"), "attachments")
	apply(t, bare("web", "orphan", portOrphan, httpScript))
	kubectl(t, "-n", "web", "wait", "--for=condition=Ready", "pod/orphan", "--timeout=120s")
	if err := refused(portOrphan); err != nil {
		t.Errorf("without a daemon: %v", err)
	}
	recs, _ := os.ReadDir(recDir)
	var found bool
	for _, r := range recs {
		b, _ := os.ReadFile(filepath.Join(recDir, r.Name()))
		found = found || strings.Contains(string(b), `"orphan"`)
	}
	if !found {
		t.Errorf("no attachment record for pod orphan in %s (%d records)", recDir, len(recs))
	}

	ensureDaemonSet(t)
	for _, p := range []int{portOrphan, portHTTP, portLoopback, portEcho} {
		eventually(t, 30*time.Second, fmt.Sprintf("port %d served after the re-creation", p), func() error { return probe(p) })
	}
	if out, err := cli(t, "get", "namespaces"); err != nil || !strings.Contains(out, "web_orphan ") {
		t.Errorf("web_orphan not replayed: %v\n%s", err, out)
	}
}

// TestUninstallCNI: the cleanup path of README.md (manifests/kubernetes/
// uninstall-cni.yaml after deleting the DaemonSet) takes nsproxy-cni out
// of the node's conflist, and pods then start on the cluster's own chain.
func TestUninstallCNI(t *testing.T) {
	ensureDaemonSet(t)
	b, err := os.ReadFile("../../manifests/kubernetes/uninstall-cni.yaml")
	if err != nil {
		t.Fatal(err)
	}
	node := kubectl(t, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	y := strings.ReplaceAll(string(b), "NODE_NAME", node)
	y = strings.ReplaceAll(y, "path: /etc/cni/net.d", "path: "+env(t, "NSPROXY_K8S_NETD"))
	y = strings.ReplaceAll(y, "image: localhost/nsproxy:dev", "image: "+env(t, "NSPROXY_K8S_IMAGE_B"))
	kubectl(t, "delete", "namespace", dsNS, "--wait=true", "--timeout=120s")
	apply(t, fmt.Sprintf(namespaceNS, "nsproxy-uninstall"))
	defer kubectlRun(t, "", "delete", "namespace", "nsproxy-uninstall", "--wait=false")
	apply(t, strings.ReplaceAll(y, "namespace: nsproxy-system", "namespace: nsproxy-uninstall"))
	eventually(t, 120*time.Second, "the uninstall pod succeeds", func() error {
		phase := kubectl(t, "-n", "nsproxy-uninstall", "get", "pod", "nsproxy-uninstall-cni-"+node, "-o", "jsonpath={.status.phase}")
		if phase != "Succeeded" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	for f, plugins := range conflists(t) {
		if !slices.Equal(types(plugins), []string{"bridge"}) {
			t.Errorf("%s chains %v after uninstall-cni, want [bridge]", f, types(plugins))
		}
	}
	apply(t, bare("web", "after", portAfter, httpScript))
	kubectl(t, "-n", "web", "wait", "--for=condition=Ready", "pod/after", "--timeout=120s")
	if err := refused(portAfter); err != nil {
		t.Errorf("a hostPort after uninstall (no portmap in this node's chain): %v", err)
	}
}
