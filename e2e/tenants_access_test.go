//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Unprivileged identities of these tests: numeric ids that need no
// /etc/passwd or /etc/group entry, so nothing is created on the host and
// nothing is left to remove. memberGID is tenant A's group, otherGID
// tenant B's.
const (
	memberUID = 61234
	memberGID = 61234
	tenantGID = 62345 // tenant A's spec.access group (supplementary)
	otherGID  = 62346 // tenant B's
	strangerU = 61235
)

func tenantYAML(name string, gid int) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: %s
spec:
  access:
    groups: ["%d"]
`, name, gid)
}

func exposureYAML(name, tenant string, hostPort int) string {
	return fmt.Sprintf(`apiVersion: nsproxy.io/v1alpha1
kind: Exposure
metadata:
  name: %s
  tenant: %s
spec:
  select:
    network: net-%s
  containerPort: 80
  hostPort: %d
`, name, tenant, tenant, hostPort)
}

// openDir makes a directory any user may read and traverse (t.TempDir is
// 0700, and the unprivileged CLI must reach the socket and the files).
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "nspe-tenants")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asUser runs the nsproxy CLI as uid/gid with supplementary groups, from
// a copy of the binary any user may execute.
func asUser(t *testing.T, bin string, uid, gid uint32, groups []uint32, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out), code
}

// TestTenantsAccess: a non-root member of tenant A's group applies,
// diffs and deletes A's manifests through the control socket and is
// refused B's (403 naming tenant B), everything outside the tenant
// endpoints and the tenants it does not belong to; a user named by no
// tenant is refused everything. What the member applied survives kill -9.
func TestTenantsAccess(t *testing.T) {
	bin := nsproxyBin(t)
	dir := openDir(t)
	cli := filepath.Join(dir, "nsproxy")
	sh(t, "cp", bin, cli)
	os.Chmod(cli, 0o755)
	sock, state := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json")
	args := []string{"--socket", sock, "--state-file", state, "--tenant-access", "--netns-dir", t.TempDir()}
	d := startDaemon(t, nil, args...)
	d.waitLog("nsproxy running")

	tenants := writeFile(t, dir, "tenants.yaml", tenantYAML("a", tenantGID)+"---\n"+tenantYAML("b", otherGID))
	if out, err := d.cli("apply", "-f", tenants); err != nil {
		t.Fatalf("root apply: %v\n%s", err, out)
	}
	expA := writeFile(t, dir, "a.yaml", exposureYAML("a-web", "a", 20050))
	expB := writeFile(t, dir, "b.yaml", exposureYAML("b-web", "b", 20051))
	member := func(args ...string) (string, int) {
		return asUser(t, cli, memberUID, memberGID, []uint32{memberGID, tenantGID}, append(args, "--socket", sock)...)
	}

	if out, code := member("diff", "-f", expA); code != 1 || !strings.Contains(out, "Exposure/a-web") {
		t.Fatalf("member diff of A's new exposure: exit %d\n%s", code, out)
	}
	if out, code := member("apply", "-f", expA); code != 0 || !strings.Contains(out, "applied: Exposure/a-web") {
		t.Fatalf("member apply of A's exposure: exit %d\n%s", code, out)
	}
	if out, code := member("diff", "-f", expA); code != 0 {
		t.Fatalf("member diff after apply: exit %d, want 0 (nothing would change)\n%s", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"apply B's exposure", []string{"apply", "-f", expB}, 1, `tenant "b"`},
		{"apply A and B at once", []string{"apply", "-f", expA, "-f", expB}, 1, `tenant "b"`},
		{"diff B", []string{"diff", "-f", expB}, 2, `tenant "b"`},
		{"delete B's tenant", []string{"delete", "-f", tenants}, 1, `tenant "b"`},
		{"get B", []string{"get", "tenants", "b"}, 1, `only tenant a, not "b"`},
		{"widen A's access", []string{"apply", "-f", writeFile(t, dir, "a-wide.yaml", tenantYAML("a", memberGID))}, 1, "spec.access"},
		{"get frontends", []string{"get", "frontends"}, 1, "permission denied"},
		{"add a namespace", []string{"ns", "add", "x", "--path", "/proc/1/ns/net"}, 1, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := member(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) || !strings.Contains(out, "permission denied") {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
	out, code := member("get", "tenants", "-o", "json")
	var seen []struct {
		Name      string   `json:"name"`
		Exposures []string `json:"exposures"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &seen) != nil || len(seen) != 1 || seen[0].Name != "a" {
		t.Fatalf("member's get tenants: exit %d\n%s", code, out)
	}
	// A user named by no tenant may do nothing, not even read.
	if out, code := asUser(t, cli, strangerU, strangerU, nil, "get", "tenants", "--socket", sock); code == 0 || !strings.Contains(out, "no tenant") {
		t.Fatalf("stranger's get tenants: exit %d\n%s", code, out)
	}
	if out, code := asUser(t, cli, strangerU, strangerU, nil, "apply", "-f", expA, "--socket", sock); code == 0 || !strings.Contains(out, "permission denied") {
		t.Fatalf("stranger's apply: exit %d\n%s", code, out)
	}

	// kill -9 and a restart on the same state file: A's exposure is back,
	// B never got one.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	d.wait(5 * time.Second)
	d2 := startDaemon(t, nil, args...)
	d2.waitLog("nsproxy running")
	out, err := d2.cli("get", "tenants", "-o", "json")
	if err != nil {
		t.Fatalf("get tenants after kill -9: %v\n%s", err, out)
	}
	var all []struct {
		Name      string   `json:"name"`
		Exposures []string `json:"exposures"`
	}
	json.Unmarshal([]byte(out), &all)
	got := map[string][]string{}
	for _, x := range all {
		got[x.Name] = x.Exposures
	}
	if !slices.Equal(got["a"], []string{"a-web"}) || len(got["b"]) != 0 || got["b"] == nil {
		t.Fatalf("after kill -9: %s", out)
	}
	// And the member can still delete what it applied.
	if out, code := member("delete", "-f", expA); code != 0 || !strings.Contains(out, "deleted: Exposure/a-web") {
		t.Fatalf("member delete of A's exposure: exit %d\n%s", code, out)
	}
}
