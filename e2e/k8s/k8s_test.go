//go:build e2ek8s

package k8s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testwait"
)

// The pods' host ports (scripts/k8s/e2e.sh checks that they are free).
const (
	portHTTP     = 19810 // web-http: httpd on the pod's IP
	portLoopback = 19811 // web-lo: httpd on the pod's 127.0.0.1 (nsproxy.io/target: loopback)
	portProxy    = 19812 // web-pp: echo, nsproxy.io/send-proxy: v2
	portEcho     = 19813 // web-echo: echo
	portRelease  = 19814 // a bare pod that is deleted
	portOrphan   = 19815 // a pod started while no daemon runs
	portAfter    = 19816 // a pod started after uninstall-cni
)

const dsNS = "nsproxy-system"

func env(t *testing.T, k string) string {
	t.Helper()
	v := os.Getenv(k)
	if v == "" {
		t.Skipf("%s is not set: run `make e2e-k8s` (scripts/k8s/e2e.sh)", k)
	}
	return v
}

func kubectlRun(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(env(t, "NSPROXY_K8S_KUBECTL"), args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlRun(t, "", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func apply(t *testing.T, yaml string) {
	t.Helper()
	if out, err := kubectlRun(t, yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, yaml)
	}
}

// cli runs the host's nsproxy CLI against the DaemonSet's socket.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--socket", env(t, "NSPROXY_K8S_SOCKET"))
	out, err := exec.Command(env(t, "NSPROXY_BIN"), args...).CombinedOutput()
	return string(out), err
}

func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	testwait.For(t, d, what, f)
}

// ensureDaemonSet applies the remapped manifest and waits for the rollout.
func ensureDaemonSet(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(env(t, "NSPROXY_K8S_MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, string(b))
	if out, err := kubectlRun(t, "", "-n", dsNS, "rollout", "status", "ds/nsproxy", "--timeout=240s"); err != nil {
		t.Fatalf("rollout: %v\n%s\n%s", err, out, describe(t))
	}
	eventually(t, 60*time.Second, "the daemon answers on its socket", func() error {
		_, err := cli(t, "stats")
		return err
	})
}

func describe(t *testing.T) string {
	out, _ := kubectlRun(t, "", "-n", dsNS, "describe", "pods")
	logs, _ := kubectlRun(t, "", "-n", dsNS, "logs", "ds/nsproxy", "--all-containers", "--tail=40")
	return out + "\n" + logs
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name              string     `json:"name"`
			Namespace         string     `json:"namespace"`
			DeletionTimestamp *time.Time `json:"deletionTimestamp"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct {
				Image string `json:"image"`
			} `json:"containers"`
		} `json:"spec"`
		Status struct {
			Phase      string `json:"phase"`
			Conditions []struct {
				Type, Status string
			} `json:"conditions"`
			ContainerStatuses []struct {
				Name         string `json:"name"`
				Ready        bool   `json:"ready"`
				RestartCount int    `json:"restartCount"`
			} `json:"containerStatuses"`
			InitContainerStatuses []struct {
				State struct {
					Terminated *struct {
						ExitCode int `json:"exitCode"`
					} `json:"terminated"`
				} `json:"state"`
			} `json:"initContainerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

func pods(t *testing.T, args ...string) podList {
	t.Helper()
	var l podList
	out := kubectl(t, append([]string{"get", "pods", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("kubectl get pods: %v\n%s", err, out)
	}
	return l
}

// app is a Deployment of one pod with one hostPort to the pod's port 80.
func app(name string, hostPort int, annotations map[string]string, script string) string {
	var ann strings.Builder
	for k, v := range annotations {
		fmt.Fprintf(&ann, "        %s: %q\n", k, v)
	}
	if ann.Len() == 0 {
		ann.WriteString("        {}\n")
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: web}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations:
%[3]s    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: %[4]s
        imagePullPolicy: Never
        args: [%[5]q]
        ports: [{containerPort: 80, hostPort: %[2]d, protocol: TCP}]
`, name, hostPort, ann.String(), appImage, script)
}

var appImage = os.Getenv("NSPROXY_K8S_APP_IMAGE")

// bare is a bare pod with one hostPort.
func bare(ns, name string, hostPort int, script string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: %[4]s
    imagePullPolicy: Never
    args: [%[5]q]
    ports: [{containerPort: 80, hostPort: %[3]d, protocol: TCP}]
`, ns, name, hostPort, appImage, script)
}

const (
	httpScript  = `echo "$HOSTNAME" >/www/index.html && exec httpd -f -p 0.0.0.0:80 -h /www`
	loScript    = `echo "lo-$HOSTNAME" >/www/index.html && exec httpd -f -p 127.0.0.1:80 -h /www`
	echoScript  = `exec nc -ll -p 80 -e /bin/cat`
	namespaceNS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n"
)

// ensureApps runs the four Deployments in namespace web and waits until
// each port answers.
func ensureApps(t *testing.T) {
	t.Helper()
	apply(t, fmt.Sprintf(namespaceNS, "web"))
	apply(t, app("web-http", portHTTP, nil, httpScript)+"---\n"+
		app("web-lo", portLoopback, map[string]string{"nsproxy.io/target": "loopback"}, loScript)+"---\n"+
		app("web-pp", portProxy, map[string]string{"nsproxy.io/send-proxy": "v2"}, echoScript)+"---\n"+
		app("web-echo", portEcho, nil, echoScript))
	if out, err := kubectlRun(t, "", "-n", "web", "wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s"); err != nil {
		t.Fatalf("deployments: %v\n%s", err, out)
	}
	for _, p := range []int{portHTTP, portLoopback, portEcho} {
		eventually(t, 30*time.Second, fmt.Sprintf("port %d answers", p), func() error { return probe(p) })
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// probe is one request on port: GET for the httpd apps, an echo otherwise.
func probe(port int) error {
	switch port {
	case portHTTP, portLoopback, portRelease, portOrphan, portAfter:
		_, err := httpGet(addr(port))
		return err
	default:
		return echoOnce(addr(port), false)
	}
}

func httpGet(a string) (string, error) {
	c, err := net.DialTimeout("tcp", a, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(b, []byte("HTTP/1.")) {
		return "", fmt.Errorf("not an HTTP answer: %q", b)
	}
	return strings.TrimSpace(string(body)), nil
}

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// echoOnce sends a line and expects it back; withProxy: after a PROXY v2
// header (the echo server sends back what nsproxy sent it).
func echoOnce(a string, withProxy bool) error {
	c, err := net.DialTimeout("tcp", a, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	if withProxy {
		head := make([]byte, 16)
		if _, err := io.ReadFull(r, head); err != nil {
			return fmt.Errorf("reading the PROXY header: %w", err)
		}
		if !bytes.Equal(head[:12], proxyV2Sig) {
			return fmt.Errorf("no PROXY v2 signature: %q", head)
		}
		n := int(head[14])<<8 | int(head[15])
		if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
			return fmt.Errorf("reading the PROXY header's %d address bytes: %w", n, err)
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q, want %q", line, "ping\n")
	}
	return nil
}

func refused(port int) error {
	c, err := net.DialTimeout("tcp", addr(port), 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("port %d still accepts connections", port)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("port %d: %v, want connection refused", port, err)
	}
	return nil
}

// listenerOwner is the process name that listens on port (ss -p).
func listenerOwner(t *testing.T, port int) string {
	t.Helper()
	out, err := exec.Command("ss", "-Htlnp", fmt.Sprintf("sport = :%d", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func conflists(t *testing.T) map[string][]map[string]any {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(env(t, "NSPROXY_K8S_NETD"), "*.conflist"))
	out := map[string][]map[string]any{}
	for _, f := range m {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = c.Plugins
	}
	if len(out) == 0 {
		t.Fatal("no conflist in the node's CNI dir")
	}
	return out
}

func types(plugins []map[string]any) []string {
	var s []string
	for _, p := range plugins {
		s = append(s, fmt.Sprint(p["type"]))
	}
	return s
}

// TestInstallCNI: the init container installs the plugin and chains it
// into the node's conflist; the daemon becomes Ready (its probes pass).
func TestInstallCNI(t *testing.T) {
	ensureDaemonSet(t)
	for f, plugins := range conflists(t) {
		if !slices.Equal(types(plugins), []string{"bridge", "nsproxy-cni"}) {
			t.Errorf("%s chains %v, want [bridge nsproxy-cni]", f, types(plugins))
			continue
		}
		p := plugins[1]
		if p["socket"] != env(t, "NSPROXY_K8S_SOCKET") {
			t.Errorf("%s: nsproxy-cni socket %v, want %s", f, p["socket"], env(t, "NSPROXY_K8S_SOCKET"))
		}
		if p["nameTemplate"] != "{{.PodNamespace}}_{{.PodName}}" {
			t.Errorf("%s: nameTemplate %v", f, p["nameTemplate"])
		}
	}
	if fi, err := os.Stat(filepath.Join(env(t, "NSPROXY_K8S_CNIBIN"), "nsproxy-cni")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("nsproxy-cni not installed in the CNI bin dir: %v", err)
	}
	l := pods(t, "-n", dsNS)
	if len(l.Items) != 1 {
		t.Fatalf("%d nsproxy pods, want 1", len(l.Items))
	}
	p := l.Items[0]
	if len(p.Status.InitContainerStatuses) != 1 || p.Status.InitContainerStatuses[0].State.Terminated == nil ||
		p.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Errorf("install-cni did not exit 0: %+v", p.Status.InitContainerStatuses)
	}
	// Ready means the readiness probe passed; wait for the liveness probe's
	// first runs too (initialDelaySeconds 10, period 20) without a restart.
	time.Sleep(15 * time.Second)
	l = pods(t, "-n", dsNS)
	for _, c := range l.Items[0].Status.ContainerStatuses {
		if !c.Ready || c.RestartCount != 0 {
			t.Errorf("container %s: ready %v, restarts %d\n%s", c.Name, c.Ready, c.RestartCount, describe(t))
		}
	}
}

// TestHostPortsExposed: hostPorts of Deployments' pods are served by the
// nsproxy daemon (its listener; no DNAT rule), and the pod annotations
// nsproxy.io/target: loopback and nsproxy.io/send-proxy: v2 take effect.
func TestHostPortsExposed(t *testing.T) {
	ensureDaemonSet(t)
	ensureApps(t)
	names := map[string]bool{}
	for _, p := range pods(t, "-n", "web").Items {
		names[p.Metadata.Name] = true
	}
	got, err := httpGet(addr(portHTTP))
	if err != nil || !names[got] || !strings.HasPrefix(got, "web-http-") {
		t.Errorf("GET :%d = %q, %v; want a web-http pod's name (pods %v)", portHTTP, got, err, names)
	}
	// Only a proxy that dials inside the pod reaches its 127.0.0.1.
	got, err = httpGet(addr(portLoopback))
	if err != nil || !strings.HasPrefix(got, "lo-web-lo-") {
		t.Errorf("GET :%d (target loopback) = %q, %v", portLoopback, got, err)
	}
	if err := echoOnce(addr(portProxy), true); err != nil {
		t.Errorf("port %d (send-proxy v2): %v", portProxy, err)
	}
	if err := echoOnce(addr(portEcho), false); err != nil {
		t.Errorf("port %d: %v", portEcho, err)
	}
	nat, _ := exec.Command("iptables-save", "-t", "nat").Output()
	for _, p := range []int{portHTTP, portLoopback, portProxy, portEcho} {
		if o := listenerOwner(t, p); !strings.Contains(o, `"nsproxy"`) {
			t.Errorf("port %d: listener %q, want nsproxy's", p, o)
		}
		if bytes.Contains(nat, []byte(fmt.Sprintf("--dport %d ", p))) {
			t.Errorf("port %d has a DNAT rule: served by iptables, not nsproxy", p)
		}
	}
}

// TestNamespaceNames: `nsproxy get namespaces` names each pod as
// NAMESPACE_POD (kubectl get pods -A), and two pods whose names would
// clash with "-" ("a-b"/"c" and "a"/"b-c") get different names.
func TestNamespaceNames(t *testing.T) {
	ensureDaemonSet(t)
	ensureApps(t)
	for _, ns := range []string{"nsp-a", "nsp-a-b"} {
		apply(t, fmt.Sprintf(namespaceNS, ns))
	}
	apply(t, bare("nsp-a-b", "c", 19817, httpScript)+"---\n"+bare("nsp-a", "b-c", 19818, httpScript))
	defer kubectlRun(t, "", "delete", "namespace", "nsp-a", "nsp-a-b", "--wait=false")
	for _, ns := range []string{"nsp-a", "nsp-a-b"} {
		if out, err := kubectlRun(t, "", "-n", ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s"); err != nil {
			t.Fatalf("pods in %s: %v\n%s", ns, err, out)
		}
	}
	var want []string
	for _, p := range pods(t, "-A").Items {
		if p.Metadata.Namespace != dsNS {
			want = append(want, p.Metadata.Namespace+"_"+p.Metadata.Name)
		}
	}
	var out string
	eventually(t, 20*time.Second, "nsproxy get namespaces lists every pod", func() error {
		var err error
		out, err = cli(t, "get", "namespaces")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w+" ") {
				return fmt.Errorf("%s missing from\n%s", w, out)
			}
		}
		return nil
	})
	t.Logf("nsproxy get namespaces:\n%s", out)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		n := strings.Fields(l)[0]
		if seen[n] {
			t.Errorf("namespace name %s listed twice", n)
		}
		seen[n] = true
	}
	if !seen["nsp-a-b_c"] || !seen["nsp-a_b-c"] {
		t.Errorf("want nsp-a-b_c and nsp-a_b-c:\n%s", out)
	}
	// The same from inside the DaemonSet's pod.
	in := kubectl(t, "-n", dsNS, "exec", "ds/nsproxy", "-c", "nsproxy", "--", "/usr/local/bin/nsproxy", "get", "namespaces",
		"--socket", "/run/nsproxy/nsproxy.sock")
	if !strings.Contains(in, "web_web-http-") {
		t.Errorf("kubectl exec nsproxy get namespaces:\n%s", in)
	}
}
