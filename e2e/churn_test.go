//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/internal/churn"
)

// TestChurnParallel: 200 containers through cnitool (bridge + host-local
// + nsproxy-cni), 16 ADDs and then 16 DELs at a time. Every host port must
// answer with its own container's reply after ADD and be refused after
// DEL, no ADD or DEL may fail, and afterwards the daemon must hold nothing
// of the containers: no attachment, record, namespace, frontend or
// namespace fd, and no more fds than it started with.
func TestChurnParallel(t *testing.T) {
	bin := nsproxyBin(t)
	plugin := filepath.Join(filepath.Dir(bin), "nsproxy-cni")
	cnitool, err := exec.LookPath("cnitool")
	if err != nil {
		cnitool = "/usr/local/bin/cnitool"
	}
	plugins := os.Getenv("NSPROXY_TEST_CNI_DIR")
	if plugins == "" {
		plugins = "/usr/local/lib/nsproxy-test-cni"
	}
	for _, p := range []string{plugin, cnitool, filepath.Join(plugins, "bridge"), filepath.Join(plugins, "host-local")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing: make build and scripts/deps-cni.sh", p)
		}
	}
	const n, parallel = 200, 16
	r, err := churn.New(churn.Config{N: n, Parallel: parallel, Nsproxy: bin, Plugin: plugin, CNITool: cnitool,
		PluginDir: plugins, Prefix: fmt.Sprintf("nspe%d", os.Getpid()%10000), Subnet: 249, WorkDir: t.TempDir(),
		Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Cleanup)
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("%v\nnsproxy log:\n%s", err, r.DaemonLog())
	}
	if res.Failures > 0 {
		t.Errorf("%d failures, first ones:\n%s", res.Failures, strings.Join(res.Errors, "\n"))
	}
	if len(res.Expose) != n || len(res.Release) != n {
		t.Errorf("%d of %d exposed, %d released", len(res.Expose), n, len(res.Release))
	}
	if len(res.Leftover) > 0 {
		t.Errorf("left in the daemon after every DEL: %s", strings.Join(res.Leftover, ", "))
	}
	if res.AfterDel.FDs > res.Start.FDs {
		t.Errorf("daemon fds: %d at start, %d with %d live, %d after every DEL", res.Start.FDs, res.Live.FDs, n, res.AfterDel.FDs)
	}
	if t.Failed() {
		t.Logf("nsproxy log:\n%s", r.DaemonLog())
	}
	t.Logf("fds %d → %d → %d; RSS %.1f → %.1f → %.1f MiB", res.Start.FDs, res.Live.FDs, res.AfterDel.FDs,
		float64(res.Start.RSS)/(1<<20), float64(res.Live.RSS)/(1<<20), float64(res.AfterDel.RSS)/(1<<20))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
