package cniplugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nsproxy/nsproxy/cniplugin"
	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
)

var specVersions = []string{"0.4.0", "1.0.0", "1.1.0"}

const containerIP = "10.233.7.5/24"

// prevResult is what bridge + host-local print, in version v: a host-side
// bridge and veth, the container's eth0 (with a sandbox) and its address,
// plus an address on the bridge that is not the container's.
func prevResult(v string) map[string]any {
	ip := func(addr string, iface int) map[string]any {
		m := map[string]any{"address": addr, "gateway": "10.233.7.1", "interface": iface}
		if v == "0.4.0" {
			m["version"] = "4"
		}
		return m
	}
	return map[string]any{
		"cniVersion": v,
		"interfaces": []any{
			map[string]any{"name": "nspbr0", "mac": "0a:58:0a:e9:07:01"},
			map[string]any{"name": "veth1234", "mac": "0a:58:0a:e9:07:02"},
			map[string]any{"name": "eth0", "mac": "0a:58:0a:e9:07:05", "sandbox": "/var/run/netns/x"},
		},
		"ips":    []any{ip(containerIP, 2), ip("10.233.7.1/24", 0)},
		"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
		"dns":    map[string]any{},
	}
}

// env is one test's daemon, record directory and plugin.
type env struct {
	t      *testing.T
	d      *fakeDaemon
	dir    string
	p      *cniplugin.Plugin
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	seq    int
}

// testRuntime is the runtime the env's plugin says runs it (not its
// parent, the go command or whatever runs the test binary).
const testRuntime = "/usr/bin/hh-runtime"

func newEnv(t *testing.T) *env {
	e := &env{t: t, d: newFakeDaemon(t), dir: filepath.Join(t.TempDir(), "attachments"),
		stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	e.p = &cniplugin.Plugin{Stdout: e.stdout, Stderr: e.stderr, Timeout: 2 * time.Second, Runtime: testRuntime}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", e.stderr)
		}
	})
	return e
}

// conf is the plugin's stdin: version v, this env's socket and record
// directory, prevResult, and extra keys (a nil value deletes a key).
func (e *env) conf(v string, extra map[string]any) []byte {
	c := map[string]any{
		"cniVersion": v, "name": "testnet", "type": "nsproxy-cni",
		"socket": e.d.socket, "attachmentDir": e.dir, "prevResult": prevResult(v),
	}
	for k, x := range extra {
		if x == nil {
			delete(c, k)
		} else {
			c[k] = x
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// args are the CmdArgs of a new container in the test's own namespace
// (CNI_NETNS_OVERRIDE allows that; real namespaces are tested as root).
func (e *env) args(stdin []byte) *skel.CmdArgs {
	e.seq++
	return &skel.CmdArgs{
		ContainerID: fmt.Sprintf("c%02d-0123456789abcdef", e.seq), IfName: "eth0",
		Netns: "/proc/self/ns/net", NetnsOverride: "1", Path: "/opt/cni/bin", StdinData: stdin,
	}
}

func key(a *skel.CmdArgs) hooks.AttachmentKey {
	return hooks.AttachmentKey{ContainerID: a.ContainerID, IfName: a.IfName}
}

func (e *env) record(a *skel.CmdArgs) (hooks.Attachment, bool) {
	r, err := hooks.ReadRecord(e.dir, key(a))
	if errors.Is(err, fs.ErrNotExist) {
		return r, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return r, true
}

// with returns a copy of args with stdin replaced.
func with(a *skel.CmdArgs, stdin []byte) *skel.CmdArgs {
	c := *a
	c.StdinData = stdin
	return &c
}

// code is the CNI error code of err, or -1.
func code(err error) int {
	var te *types.Error
	if errors.As(err, &te) {
		return int(te.Code)
	}
	return -1
}

func wantCode(t *testing.T, err error, want uint) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %d", want)
	}
	if got := code(err); got != int(want) {
		t.Fatalf("error %v (code %d), want code %d", err, got, want)
	}
}

var portMappings = []any{map[string]any{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}}

func withPorts(pm []any) map[string]any {
	return map[string]any{"runtimeConfig": map[string]any{"portMappings": pm}}
}

// The whole life of an attachment, on every spec version.
func TestVerbsEveryVersion(t *testing.T) {
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			stdin := e.conf(v, withPorts(portMappings))
			args := e.args(stdin)

			if err := e.p.Add(args); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			// The result is prevResult, unchanged, in the request's version.
			res, err := version.NewResult(v, e.stdout.Bytes())
			if err != nil {
				t.Fatalf("ADD printed %s: %v", e.stdout, err)
			}
			if res.Version() != v {
				t.Errorf("result version %s, want %s", res.Version(), v)
			}
			var printed, want map[string]any
			json.Unmarshal(e.stdout.Bytes(), &printed)
			wb, _ := json.Marshal(prevResult(v))
			json.Unmarshal(wb, &want)
			delete(want, "dns") // an empty DNS may be omitted
			delete(printed, "dns")
			if !reflect.DeepEqual(printed, want) {
				t.Errorf("printed %v\nwant %v", printed, want)
			}

			rec, ok := e.record(args)
			if !ok {
				t.Fatal("no record after ADD")
			}
			got, ok := e.d.attachment(key(args))
			if !ok {
				t.Fatal("the daemon has no attachment after ADD")
			}
			if !reflect.DeepEqual(rec.IPs, []string{containerIP}) || !reflect.DeepEqual(got.IPs, rec.IPs) {
				t.Errorf("IPs: record %v, daemon %v, want only the container's %s", rec.IPs, got.IPs, containerIP)
			}
			wantPM := []hooks.PortMapping{{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"}}
			if !reflect.DeepEqual(got.PortMappings, wantPM) || got.Source != hooks.SourceCNI || got.Netns != "/proc/self/ns/net" {
				t.Errorf("daemon has %+v", got)
			}
			if got.Metadata[hooks.MetaNetwork] != "testnet" {
				t.Errorf("metadata %v", got.Metadata)
			}

			if err := e.p.Check(args); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			if err := e.p.Status(args); err != nil {
				t.Fatalf("STATUS: %v", err)
			}
			gcKeep := e.conf(v, map[string]any{"prevResult": nil, "cni.dev/valid-attachments": []any{
				map[string]string{"containerID": args.ContainerID, "ifname": args.IfName}}})
			if err := e.p.GC(with(args, gcKeep)); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if _, ok := e.record(args); !ok {
				t.Fatal("GC removed a valid record")
			}

			// ADD again is an update.
			if err := e.p.Add(args); err != nil {
				t.Fatalf("second ADD: %v", err)
			}
			if n := len(e.d.keys()); n != 1 {
				t.Errorf("daemon has %d attachments after a repeated ADD", n)
			}

			if err := e.p.Del(args); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if _, ok := e.record(args); ok {
				t.Error("record left after DEL")
			}
			if len(e.d.keys()) != 0 {
				t.Errorf("daemon still has %v", e.d.keys())
			}
			wantCode(t, e.p.Check(args), cniplugin.CodeNotRegistered)

			// GC with an empty list removes what ADD made.
			e.stdout.Reset()
			args2 := e.args(stdin)
			if err := e.p.Add(args2); err != nil {
				t.Fatal(err)
			}
			gcNone := e.conf(v, map[string]any{"prevResult": nil, "cni.dev/valid-attachments": []any{}})
			if err := e.p.GC(with(args2, gcNone)); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if _, ok := e.record(args2); ok || len(e.d.keys()) != 0 {
				t.Errorf("GC left the record or %v", e.d.keys())
			}
			for _, c := range e.d.callList() {
				if strings.HasSuffix(c, "/gc") {
					t.Errorf("used the daemon's global gc: %s", c)
				}
			}
		})
	}
}

// DEL succeeds whatever state things are in.
func TestDelAlwaysSucceeds(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env, a *skel.CmdArgs) *skel.CmdArgs
	}{
		{"netns gone", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			a.Netns = "/var/run/netns/nspt-gone-" + fmt.Sprint(os.Getpid())
			return a
		}},
		{"CNI_NETNS empty", func(e *env, a *skel.CmdArgs) *skel.CmdArgs { a.Netns = ""; return a }},
		{"no prevResult", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", map[string]any{"prevResult": nil}))
		}},
		{"twice", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			if err := e.p.Del(a); err != nil {
				e.t.Fatal(err)
			}
			return a
		}},
		{"daemon down", func(e *env, a *skel.CmdArgs) *skel.CmdArgs { e.d.stop(); return a }},
		{"invalid config", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", map[string]any{"target": "nowhere", "nameTemplate": "{{"}))
		}},
		{"never added", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			a.ContainerID += "-other"
			return a
		}},
		{"no record dir", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", map[string]any{"attachmentDir": "/nonexistent/nsproxy"}))
		}},
	}
	for _, v := range specVersions {
		for _, tt := range tests {
			t.Run(v+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				a := e.args(e.conf(v, withPorts(portMappings)))
				if err := e.p.Add(a); err != nil {
					t.Fatal(err)
				}
				del := tt.setup(e, with(a, a.StdinData))
				if err := e.p.Del(del); err != nil {
					t.Fatalf("DEL: %v", err)
				}
				if e.stdout.Len() != 0 && !strings.HasPrefix(e.stdout.String(), "{") {
					t.Errorf("stdout %q", e.stdout)
				}
				if tt.name == "never added" || tt.name == "no record dir" {
					return
				}
				if _, ok := e.record(a); ok {
					t.Error("record left after DEL")
				}
				if tt.name != "daemon down" && len(e.d.keys()) != 0 {
					t.Errorf("daemon still has %v", e.d.keys())
				}
			})
		}
	}
}

func TestAddRefused(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(e *env, a *skel.CmdArgs)
		code  uint
		inMsg string
	}{
		{"no prevResult", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"prevResult": nil})
		}, types.ErrInvalidNetworkConfig, "chained"},
		{"netns missing", func(e *env, a *skel.CmdArgs) { a.Netns = filepath.Join(dir, "none") }, types.ErrInvalidEnvironmentVariables, "no such file"},
		{"netns empty", func(e *env, a *skel.CmdArgs) { a.Netns = "" }, types.ErrInvalidEnvironmentVariables, "empty"},
		{"netns regular file", func(e *env, a *skel.CmdArgs) { a.Netns = regular }, types.ErrInvalidEnvironmentVariables, "not a namespace"},
		{"netns directory", func(e *env, a *skel.CmdArgs) { a.Netns = dir }, types.ErrInvalidEnvironmentVariables, "not a namespace"},
		{"netns fifo", func(e *env, a *skel.CmdArgs) { a.Netns = fifo }, types.ErrInvalidEnvironmentVariables, "not a namespace"},
		{"mount namespace", func(e *env, a *skel.CmdArgs) { a.Netns = "/proc/self/ns/mnt" }, types.ErrInvalidEnvironmentVariables, "not a network namespace"},
		{"own namespace", func(e *env, a *skel.CmdArgs) { a.NetnsOverride = "" }, types.ErrInvalidEnvironmentVariables, "own network namespace"},
		{"bad target", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"target": "host"})
		}, types.ErrInvalidNetworkConfig, "target"},
		{"bad sendProxy", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"sendProxy": "v3"})
		}, types.ErrInvalidNetworkConfig, "sendProxy"},
		{"bad hostPorts", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"hostPorts": "steal"})
		}, types.ErrInvalidNetworkConfig, "hostPorts"},
		{"bad template", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"nameTemplate": "{{.Pod}}"})
		}, types.ErrInvalidNetworkConfig, "unknown field"},
		{"relative socket", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"socket": "nsproxy.sock"})
		}, types.ErrInvalidNetworkConfig, "absolute"},
		{"bad portMappings", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", withPorts([]any{map[string]any{"hostPort": "x"}}))
		}, types.ErrDecodingFailure, "decode"},
		{"bad prevResult", func(e *env, a *skel.CmdArgs) {
			a.StdinData = e.conf("1.1.0", map[string]any{"prevResult": map[string]any{"ips": "x"}})
		}, types.ErrDecodingFailure, "prevResult"},
		{"name taken", func(e *env, a *skel.CmdArgs) {
			e.d.put(hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "other", IfName: "eth0"}, Name: "web", Netns: "/x"})
			a.StdinData = e.conf("1.1.0", map[string]any{"nameTemplate": "web"})
		}, cniplugin.CodeRejected, "is used by attachment other/eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.args(e.conf("1.1.0", withPorts(portMappings)))
			tt.edit(e, a)
			err := e.p.Add(a)
			wantCode(t, err, tt.code)
			if !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("error %q does not say %q", err, tt.inMsg)
			}
			if e.stdout.Len() != 0 {
				t.Errorf("printed %q before failing", e.stdout)
			}
			if _, ok := e.record(a); ok {
				t.Error("record left by a failed ADD")
			}
			for _, c := range e.d.callList() {
				if strings.HasPrefix(c, "POST") && tt.code != cniplugin.CodeRejected {
					t.Errorf("told the daemon: %s", c)
				}
			}
		})
	}
}

func TestAddDaemonDown(t *testing.T) {
	tests := []struct {
		name   string
		strict bool
		down   func(e *env)
	}{
		{"stopped", false, func(e *env) { e.d.stop() }},
		{"stopped strict", true, func(e *env) { e.d.stop() }},
		{"not answering", false, hang},
		{"not answering strict", true, hang},
		{"internal error", false, func(e *env) { e.d.set(func(d *fakeDaemon) { d.override = status500 }) }},
		{"internal error strict", true, func(e *env) { e.d.set(func(d *fakeDaemon) { d.override = status500 }) }},
	}
	for _, v := range specVersions {
		for _, tt := range tests {
			t.Run(v+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				e.p.Timeout = 200 * time.Millisecond
				tt.down(e)
				a := e.args(e.conf(v, map[string]any{"strict": tt.strict,
					"runtimeConfig": map[string]any{"portMappings": portMappings}}))
				err := e.p.Add(a)
				_, recorded := e.record(a)
				if tt.strict {
					wantCode(t, err, types.ErrTryAgainLater)
					if e.stdout.Len() != 0 || recorded {
						t.Errorf("strict failure printed %q, recorded=%v", e.stdout, recorded)
					}
					return
				}
				if err != nil {
					t.Fatalf("ADD failed with the daemon down: %v", err)
				}
				if !recorded {
					t.Error("no record: the daemon could not replay the attachment")
				}
				if _, err := version.NewResult(v, e.stdout.Bytes()); err != nil {
					t.Errorf("result %q: %v", e.stdout, err)
				}
				if !strings.Contains(e.stderr.String(), "pick the attachment up from its record") {
					t.Errorf("stderr does not explain: %s", e.stderr)
				}
			})
		}
	}
}

var status500 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	http.Error(w, `{"error":"boom"}`, 500)
})

func hang(e *env) {
	release := make(chan struct{})
	e.d.set(func(d *fakeDaemon) {
		d.override = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
	})
	e.t.Cleanup(func() { close(release) })
}

// Neither a record nor the daemon: nothing would ever expose the
// container, so ADD fails even when not strict.
func TestAddNeitherRecordedNorRegistered(t *testing.T) {
	e := newEnv(t)
	e.d.stop()
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	a := e.args(e.conf("1.1.0", map[string]any{"attachmentDir": filepath.Join(blocker, "sub")}))
	wantCode(t, e.p.Add(a), types.ErrIOFailure)
	if e.stdout.Len() != 0 {
		t.Errorf("printed %q", e.stdout)
	}
	// With the daemon up, a record that cannot be written is only logged.
	e2 := newEnv(t)
	a2 := e2.args(e2.conf("1.1.0", map[string]any{"attachmentDir": filepath.Join(blocker, "sub")}))
	if err := e2.p.Add(a2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e2.stderr.String(), "cannot write the attachment record") {
		t.Errorf("stderr %s", e2.stderr)
	}
}

// A port conflict is the daemon's to report: ADD succeeds and logs it,
// CHECK fails. UDP mappings are reported but do not fail CHECK.
func TestPortConflictAndUDP(t *testing.T) {
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			first := e.args(e.conf(v, withPorts(portMappings)))
			if err := e.p.Add(first); err != nil {
				t.Fatal(err)
			}
			second := e.args(first.StdinData)
			if err := e.p.Add(second); err != nil {
				t.Fatalf("ADD with a port conflict failed: %v", err)
			}
			if !strings.Contains(e.stderr.String(), "host port 18080 is already in use") {
				t.Errorf("conflict not logged: %s", e.stderr)
			}
			if err := e.p.Check(first); err != nil {
				t.Errorf("CHECK of the first: %v", err)
			}
			err := e.p.Check(second)
			wantCode(t, err, cniplugin.CodeNotExposed)
			if !strings.Contains(err.Error(), "18080 is not exposed") || !strings.Contains(err.Error(), "already in use") {
				t.Errorf("CHECK error %q", err)
			}

			udp := e.args(e.conf(v, withPorts([]any{
				map[string]any{"hostPort": 18081, "containerPort": 81},
				map[string]any{"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
			})))
			if err := e.p.Add(udp); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Check(udp); err != nil {
				t.Errorf("CHECK with a UDP mapping: %v", err)
			}
		})
	}
}

func TestCheckFails(t *testing.T) {
	tests := []struct {
		name string
		edit func(e *env, a *skel.CmdArgs) *skel.CmdArgs
		code uint
		msg  string
	}{
		{"daemon down", func(e *env, a *skel.CmdArgs) *skel.CmdArgs { e.d.stop(); return a }, types.ErrTryAgainLater, "unavailable"},
		{"daemon forgot", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			e.d.set(func(d *fakeDaemon) { d.atts = nil })
			return a
		}, cniplugin.CodeNotRegistered, "has no attachment"},
		{"record lost", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			hooks.RemoveRecord(e.dir, key(a))
			return a
		}, cniplugin.CodeNotRegistered, "would lose"},
		{"namespace missing", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			e.d.set(func(d *fakeDaemon) { d.state = "missing" })
			return a
		}, cniplugin.CodeNotExposed, `state "missing"`},
		{"other netns", func(e *env, a *skel.CmdArgs) *skel.CmdArgs { a.Netns = "/proc/thread-self/ns/net"; return a }, cniplugin.CodeNotExposed, "registered netns"},
		{"other IPs", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			p := prevResult("1.1.0")
			p["ips"] = []any{map[string]any{"address": "10.233.7.9/24", "interface": 2}}
			return with(a, e.conf("1.1.0", map[string]any{"prevResult": p}))
		}, cniplugin.CodeNotExposed, "registered IPs"},
		{"new mapping", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", withPorts(append(portMappings, map[string]any{"hostPort": 18090, "containerPort": 90}))))
		}, cniplugin.CodeNotExposed, "18090 is not exposed"},
		// The daemon serves 18080 to port 80; a mapping to 8080 on the same
		// host port is not exposed, whatever the frontend is called.
		{"other container port", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", withPorts([]any{map[string]any{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}})))
		}, cniplugin.CodeNotExposed, "18080 is not exposed"},
		{"no prevResult", func(e *env, a *skel.CmdArgs) *skel.CmdArgs {
			return with(a, e.conf("1.1.0", map[string]any{"prevResult": nil}))
		}, types.ErrInvalidNetworkConfig, "chained"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.args(e.conf("1.1.0", withPorts(portMappings)))
			if err := e.p.Add(a); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Check(a); err != nil {
				t.Fatalf("CHECK right after ADD: %v", err)
			}
			err := e.p.Check(tt.edit(e, with(a, a.StdinData)))
			wantCode(t, err, tt.code)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			a := e.args(e.conf(v, map[string]any{"prevResult": nil}))
			if err := e.p.Status(a); err != nil {
				t.Fatalf("ready: %v", err)
			}
			// Not ready, or down: ADD still works (the record waits for
			// the daemon), so STATUS succeeds; strict, ADD fails, so
			// does STATUS (50).
			strict := e.args(e.conf(v, map[string]any{"prevResult": nil, "strict": true}))
			e.d.set(func(d *fakeDaemon) { d.notReady = true })
			if err := e.p.Status(a); err != nil {
				t.Errorf("not ready, not strict: %v", err)
			}
			wantCode(t, e.p.Status(strict), types.ErrPluginNotAvailable)
			e.d.stop()
			if err := e.p.Status(a); err != nil {
				t.Errorf("down, not strict: %v", err)
			}
			err := e.p.Status(strict)
			wantCode(t, err, types.ErrPluginNotAvailable)
			if !strings.Contains(err.Error(), e.d.socket) {
				t.Errorf("error %q does not name the socket", err)
			}
			// Down, and no record can be written: ADD would fail.
			blocked := filepath.Join(t.TempDir(), "file")
			os.WriteFile(blocked, nil, 0o600)
			norec := e.args(e.conf(v, map[string]any{"prevResult": nil, "attachmentDir": filepath.Join(blocked, "attachments")}))
			err = e.p.Status(norec)
			wantCode(t, err, types.ErrPluginNotAvailable)
			if !strings.Contains(err.Error(), "cannot be recorded") {
				t.Errorf("error %q does not say the attachments cannot be recorded", err)
			}
		})
	}
}

func TestGC(t *testing.T) {
	for _, v := range specVersions {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			netA := e.conf(v, nil)
			netB := e.conf(v, map[string]any{"name": "othernet"})
			keep, stale, stale2 := e.args(netA), e.args(netA), e.args(netA)
			other := e.args(netB)
			for _, a := range []*skel.CmdArgs{keep, stale, stale2, other} {
				if err := e.p.Add(a); err != nil {
					t.Fatal(err)
				}
			}
			oci := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "oci1", IfName: "eth0"},
				Netns: "/proc/1/ns/net", Source: hooks.SourceOCI}
			e.d.put(oci)
			// The daemon lost stale2's record but still has it; a record
			// without a daemon attachment is removed too.
			hooks.RemoveRecord(e.dir, key(stale2))

			gc := func(extra map[string]any) error {
				extra["prevResult"] = nil
				return e.p.GC(with(keep, e.conf(v, extra)))
			}
			// The older key alone is enough.
			if err := gc(map[string]any{"cni.dev/attachments": []any{
				map[string]string{"containerID": keep.ContainerID, "ifname": "eth0"}}}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			want := []hooks.AttachmentKey{key(keep), key(other), oci.AttachmentKey}
			if got := e.d.keys(); !reflect.DeepEqual(got, want) {
				t.Errorf("daemon keeps %v, want %v", got, want)
			}
			for _, a := range []*skel.CmdArgs{stale, stale2} {
				if _, ok := e.record(a); ok {
					t.Errorf("record of %s kept", a.ContainerID)
				}
			}
			for _, a := range []*skel.CmdArgs{keep, other} {
				if _, ok := e.record(a); !ok {
					t.Errorf("record of %s removed", a.ContainerID)
				}
			}

			// No list at all (libcni without GCArgs, cnitool gc): every
			// attachment of this network goes, nothing else.
			if err := gc(map[string]any{}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			want = []hooks.AttachmentKey{key(other), oci.AttachmentKey}
			if got := e.d.keys(); !reflect.DeepEqual(got, want) {
				t.Errorf("daemon keeps %v, want %v", got, want)
			}
			if _, ok := e.record(keep); ok {
				t.Error("record kept by GC without a list")
			}

			// Daemon down: records are still collected, and GC says it
			// could not finish.
			if err := e.p.Add(keep); err != nil {
				t.Fatal(err)
			}
			e.d.stop()
			err := gc(map[string]any{"cni.dev/valid-attachments": []any{}})
			wantCode(t, err, types.ErrTryAgainLater)
			if _, ok := e.record(keep); ok {
				t.Error("record kept by GC with an empty list")
			}
			if _, ok := e.record(other); !ok {
				t.Error("GC of one network removed another's record")
			}
		})
	}
}

// TestGCRemovesRecordsOfAnEarlierBoot: a record that outlived its kernel
// (records are not fsynced; its namespace is gone) is garbage for every
// network, whatever the valid list says.
func TestGCRemovesRecordsOfAnEarlierBoot(t *testing.T) {
	e := newEnv(t)
	keep := e.args(e.conf("1.1.0", nil))
	if err := e.p.Add(keep); err != nil {
		t.Fatal(err)
	}
	stale := hooks.RecordPath(e.dir, hooks.AttachmentKey{ContainerID: "before", IfName: "eth0"})
	if err := os.WriteFile(stale, []byte(`{"version":1,"boot":"00000000-0000-0000-0000-000000000000",`+
		`"attachment":{"containerID":"before","ifname":"eth0","netns":"/run/netns/x","metadata":{"network":"othernet"}}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	extra := map[string]any{"prevResult": nil, "cni.dev/valid-attachments": []any{
		map[string]string{"containerID": keep.ContainerID, "ifname": "eth0"},
		map[string]string{"containerID": "before", "ifname": "eth0"}}}
	if err := e.p.GC(with(keep, e.conf("1.1.0", extra))); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record of an earlier boot kept: %v", err)
	}
	if _, ok := e.record(keep); !ok {
		t.Error("this boot's valid record removed")
	}
}

func TestParseCNIArgs(t *testing.T) {
	tests := []struct {
		in   string
		want cniplugin.CNIArgs
	}{
		{"", cniplugin.CNIArgs{}},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
			cniplugin.CNIArgs{PodName: "web-0", PodNamespace: "default", PodUID: "u-1", PodInfraContainerID: "abc", IgnoreUnknown: true}},
		// podman: its own keys, empty values, the caller's args appended.
		{"IgnoreUnknown=1;K8S_POD_NAME=box;IP=;MAC=;FOO=bar", cniplugin.CNIArgs{PodName: "box", IgnoreUnknown: true}},
		// Unknown keys are ignored even without IgnoreUnknown.
		{"FOO=bar;K8S_POD_NAME=x", cniplugin.CNIArgs{PodName: "x"}},
		{"IgnoreUnknown=true", cniplugin.CNIArgs{IgnoreUnknown: true}},
		{"IgnoreUnknown=0;K8S_POD_NAME=a=b", cniplugin.CNIArgs{PodName: "a=b"}},
		{";;garbage;K8S_POD_NAME=;=x;K8S_POD_NAMESPACE=ns;", cniplugin.CNIArgs{PodNamespace: "ns"}},
		{"K8S_POD_NAME=a;K8S_POD_NAME=b", cniplugin.CNIArgs{PodName: "b"}},
		{"k8s_pod_name=lower", cniplugin.CNIArgs{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := cniplugin.ParseCNIArgs(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// containerd sends Go-cased keys; podman lower camel case.
func TestPortMappingsDecoding(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []hooks.PortMapping
	}{
		{"cni", `[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]`,
			[]hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}},
		{"containerd", `[{"HostPort":8080,"ContainerPort":80,"Protocol":"TCP","HostIP":""}]`,
			[]hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{"mixed", `[{"HOSTPORT":1,"containerport":2,"PROTOCOL":"Udp","hostip":"::1"}]`,
			[]hooks.PortMapping{{HostPort: 1, ContainerPort: 2, Protocol: "udp", HostIP: "::1"}}},
		{"no protocol", `[{"hostPort":8080,"containerPort":80}]`, []hooks.PortMapping{{HostPort: 8080, ContainerPort: 80}}},
		{"none", `null`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"cniVersion":"1.1.0","name":"n","runtimeConfig":{"portMappings":` + tt.in + `}}`
			c, err := cniplugin.ParseConfig([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.RuntimeConfig.PortMappings, tt.want) {
				t.Errorf("got %+v, want %+v", c.RuntimeConfig.PortMappings, tt.want)
			}
		})
	}
	// hostPort 0 (a containerPort that is not published) is not sent.
	e := newEnv(t)
	a := e.args(e.conf("1.0.0", withPorts([]any{map[string]any{"HostPort": 0, "ContainerPort": 80}, map[string]any{"HostPort": 8080, "ContainerPort": 80}})))
	if err := e.p.Add(a); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.d.attachment(key(a)); len(got.PortMappings) != 1 || got.PortMappings[0].HostPort != 8080 {
		t.Errorf("daemon got %+v", got.PortMappings)
	}
}

func TestNameTemplate(t *testing.T) {
	f := cniplugin.NameFields{ContainerID: "0123456789abcdef", ShortID: "0123456789ab", IfName: "eth0",
		PodName: "web-0", PodNamespace: "shop", PodUID: "uid", Network: "podnet"}
	tests := []struct {
		tmpl   string
		fields cniplugin.NameFields
		want   string
		err    string
	}{
		{"", f, "", ""},
		{"{{.PodNamespace}}-{{.PodName}}", f, "shop-web-0", ""},
		{"{{ .PodNamespace }}/{{ .PodName }}", f, "shop-web-0", ""},
		{"{{.PodNamespace}}-{{.PodName}}", cniplugin.NameFields{}, "", ""}, // "-": the daemon's default
		{"{{.Network}}.{{.ShortID}}.{{.IfName}}", f, "podnet.0123456789ab.eth0", ""},
		{"c:{{.ContainerID}}:{{.PodUID}}", f, "c:0123456789abcdef:uid", ""},
		{"{{.PodName}}", cniplugin.NameFields{PodName: "my pod/ü"}, "my-pod---", ""},
		{"x{{.PodName}}", cniplugin.NameFields{PodName: strings.Repeat("a", 300)}, "x" + strings.Repeat("a", 179), ""},
		{"static", f, "static", ""},
		{"..", f, "", ""},
		{"{{.Nope}}", f, "", "unknown field"},
		{"{{PodName}}", f, "", "unknown field"},
		{"{{.PodName", f, "", "unclosed"},
		{"{{range 9}}x{{end}}", f, "", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "n", "nameTemplate": tt.tmpl})
			c, err := cniplugin.ParseConfig(b)
			if tt.err != "" {
				wantCode(t, err, types.ErrInvalidNetworkConfig)
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q does not say %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.NamespaceName(tt.fields); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Through ADD, with K8S_POD_* from CNI_ARGS.
	e := newEnv(t)
	a := e.args(e.conf("1.1.0", map[string]any{"nameTemplate": "{{.PodNamespace}}-{{.PodName}}"}))
	a.Args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=u1"
	if err := e.p.Add(a); err != nil {
		t.Fatal(err)
	}
	got, _ := e.d.attachment(key(a))
	if got.Name != "shop-web-0" {
		t.Errorf("name %q", got.Name)
	}
	want := map[string]string{hooks.MetaNetwork: "testnet", hooks.MetaRuntime: testRuntime, hooks.MetaPodName: "web-0",
		hooks.MetaPodNamespace: "shop", hooks.MetaPodUID: "u1"}
	if !maps.Equal(got.Metadata, want) {
		t.Errorf("metadata %v, want %v", got.Metadata, want)
	}
}

func TestMetadata(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
		want  map[string]string
	}{
		{"defaults", nil, map[string]string{}},
		{"config", map[string]any{"target": "loopback", "sendProxy": "v2"},
			map[string]string{hooks.MetaTarget: "loopback", hooks.MetaSendProxy: "v2"}},
		{"target ip is the default", map[string]any{"target": "ip"}, map[string]string{}},
		{"host ports adopted", map[string]any{"hostPorts": "adopt"}, map[string]string{hooks.MetaHostPorts: "adopt"}},
		{"host ports bound is the default", map[string]any{"hostPorts": "bind"}, map[string]string{}},
		{"annotations", map[string]any{"sendProxy": "v1", "runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{
			"nsproxy.io/send-proxy": "v2", "nsproxy.io/expose": "8080:80", "other.io/x": "y",
			hooks.MetaNetwork: "spoofed", hooks.MetaRuntime: "spoofed", hooks.MetaPodName: "spoofed"}}},
			map[string]string{hooks.MetaSendProxy: "v2", "nsproxy.io/expose": "8080:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.args(e.conf("1.1.0", tt.extra))
			if err := e.p.Add(a); err != nil {
				t.Fatal(err)
			}
			got, _ := e.d.attachment(key(a))
			want := maps.Clone(tt.want)
			want[hooks.MetaNetwork] = "testnet"
			want[hooks.MetaRuntime] = testRuntime
			if !maps.Equal(got.Metadata, want) {
				t.Errorf("metadata %v, want %v", got.Metadata, want)
			}
		})
	}
}

func TestContainerIPs(t *testing.T) {
	tests := []struct {
		name string
		ips  []any
		want []string
	}{
		{"container only", []any{
			map[string]any{"address": "10.233.7.1/24", "interface": 0},
			map[string]any{"address": "10.233.7.5/24", "interface": 2},
			map[string]any{"address": "fd00::5/64", "interface": 2},
		}, []string{"10.233.7.5/24", "fd00::5/64"}},
		{"no interface said", []any{
			map[string]any{"address": "10.233.7.5/24"},
			map[string]any{"address": "10.233.7.6/24"},
		}, []string{"10.233.7.5/24", "10.233.7.6/24"}},
		{"index out of range", []any{
			map[string]any{"address": "10.233.7.5/24", "interface": 7},
		}, nil},
		{"none", []any{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := prevResult("1.1.0")
			p["ips"] = tt.ips
			a := e.args(e.conf("1.1.0", map[string]any{"prevResult": p}))
			if err := e.p.Add(a); err != nil {
				t.Fatal(err)
			}
			got, _ := e.d.attachment(key(a))
			if !slices.Equal(got.IPs, tt.want) {
				t.Errorf("IPs %v, want %v", got.IPs, tt.want)
			}
		})
	}
}

// Real namespaces: a named one is accepted, the plugin's own refused.
func TestNetnsAsRoot(t *testing.T) {
	name := testns.New(t, "cni")
	e := newEnv(t)
	a := e.args(e.conf("1.1.0", withPorts(portMappings)))
	a.Netns, a.NetnsOverride = "/var/run/netns/"+name, ""
	if err := e.p.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Check(a); err != nil {
		t.Fatal(err)
	}
	testns.Delete(name)
	if err := e.p.Del(a); err != nil {
		t.Fatalf("DEL after the namespace is gone: %v", err)
	}
	own := e.args(e.conf("1.1.0", nil))
	own.Netns, own.NetnsOverride = "/proc/self/ns/net", ""
	wantCode(t, e.p.Add(own), types.ErrInvalidEnvironmentVariables)
}
