package cniplugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
)

// testPluginDir is where scripts/deps-cni.sh installs the reference
// plugins (v1.10.0, CNI 1.1.0).
func testPluginDir() string {
	if d := os.Getenv("NSPROXY_TEST_CNI_DIR"); d != "" {
		return d
	}
	return "/usr/local/lib/nsproxy-test-cni"
}

// buildPlugin builds cmd/nsproxy-cni into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "nsproxy-cni"), "github.com/nsproxy/nsproxy/cmd/nsproxy-cni")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nsproxy-cni: %v\n%s", err, out)
	}
	return dir
}

// The plugin as a runtime runs it: libcni executes bridge, host-local and
// nsproxy-cni (built here) in a real namespace, against a fake daemon.
func TestLibcniRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a bridge")
	}
	plugins := testPluginDir()
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(plugins, p)); err != nil {
			t.Skipf("reference plugin %s missing in %s: run scripts/deps-cni.sh (or set NSPROXY_TEST_CNI_DIR)", p, plugins)
		}
	}
	bin := buildPlugin(t)
	for i, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			d := newFakeDaemon(t)
			tmp := t.TempDir()
			ns := testns.New(t, "cni")
			bridge := testns.Name("b") // the bridge plugin makes it on the host
			t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
			subnet := fmt.Sprintf("10.233.%d.0/24", 200+i)
			records := filepath.Join(tmp, "attachments")
			conflist := map[string]any{
				"cniVersion": v, "name": "nsptnet" + fmt.Sprint(i),
				"plugins": []any{
					map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true,
						"ipam": map[string]any{"type": "host-local", "subnet": subnet, "dataDir": filepath.Join(tmp, "ipam")}},
					map[string]any{"type": "nsproxy-cni", "socket": d.socket, "attachmentDir": records,
						"nameTemplate": "{{.PodName}}", "capabilities": map[string]bool{"portMappings": true}},
				},
			}
			b, _ := json.Marshal(conflist)
			list, err := libcni.NetworkConfFromBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			cni := libcni.NewCNIConfigWithCacheDir([]string{plugins, bin}, filepath.Join(tmp, "cache"), nil)
			rt := &libcni.RuntimeConf{
				ContainerID: fmt.Sprintf("nsptlibcni%d", i), NetNS: "/var/run/netns/" + ns, IfName: "eth0",
				Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "web" + fmt.Sprint(i)}},
				CapabilityArgs: map[string]any{"portMappings": []map[string]any{
					{"hostPort": 18180 + i, "containerPort": 80, "protocol": "tcp"}}},
			}
			k := hooks.AttachmentKey{ContainerID: rt.ContainerID, IfName: "eth0"}
			ctx := context.Background()

			res, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			r100, err := types100.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if res.Version() != v || len(r100.IPs) == 0 {
				t.Fatalf("result %s %+v", res.Version(), r100)
			}
			_, sn, _ := net.ParseCIDR(subnet)
			got, ok := d.attachment(k)
			if !ok {
				t.Fatalf("the daemon got no attachment; calls %v", d.callList())
			}
			if len(got.IPs) != 1 || !sn.Contains(net.ParseIP(strings.Split(got.IPs[0], "/")[0])) {
				t.Errorf("IPs %v, want one address in %s (the container's, not the gateway's)", got.IPs, subnet)
			}
			if got.Netns != rt.NetNS || got.Name != "web"+fmt.Sprint(i) || len(got.PortMappings) != 1 ||
				got.PortMappings[0].HostPort != 18180+i || got.Metadata[hooks.MetaNetwork] != list.Name {
				t.Errorf("daemon has %+v", got)
			}
			if _, err := hooks.ReadRecord(records, k); err != nil {
				t.Errorf("record: %v", err)
			}

			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			if v == "1.1.0" {
				if err := cni.GetStatusNetworkList(ctx, list); err != nil {
					t.Fatalf("STATUS: %v", err)
				}
				// Not strict: ADD works with the daemon not ready (its
				// record waits), so STATUS says ready (TestStatus has the
				// strict case, 50).
				d.set(func(d *fakeDaemon) { d.notReady = true })
				if err := cni.GetStatusNetworkList(ctx, list); err != nil {
					t.Errorf("STATUS with the daemon not ready, not strict: %v, want ready", err)
				}
				d.set(func(d *fakeDaemon) { d.notReady = false })
				// GC keeping the attachment keeps it.
				if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{
					{ContainerID: k.ContainerID, IfName: k.IfName}}}); err != nil {
					t.Fatalf("GC: %v", err)
				}
				if _, ok := d.attachment(k); !ok {
					t.Fatal("GC removed a valid attachment")
				}
			}

			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if _, ok := d.attachment(k); ok {
				t.Error("attachment left after DEL")
			}
			if _, err := hooks.ReadRecord(records, k); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("record after DEL: %v", err)
			}
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			// The namespace gone, the daemon down: DEL still succeeds.
			if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("ADD again: %v", err)
			}
			testns.Delete(ns)
			d.stop()
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Fatalf("DEL without namespace and daemon: %v", err)
			}
			if _, err := hooks.ReadRecord(records, k); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("record after DEL: %v", err)
			}
		})
	}
}
