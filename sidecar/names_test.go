package sidecar

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

func TestAssignNames(t *testing.T) {
	file := &config.Config{Namespaces: []config.NamespaceRef{{Name: "files"}}}
	att := func(id, name string) api.Attachment {
		return api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"}, Name: name}
	}
	// cnitool IDs that share their first 12 characters.
	a, b := att("cnitool-0a1bffff", ""), att("cnitool-0a1b0000", "")
	for _, tc := range []struct {
		name string
		st   State
		prev map[api.AttachmentKey]string
		want []string
	}{
		{"default names clash", State{Attachments: []api.Attachment{a, b}}, nil,
			[]string{"cni-cnitool-0a1b-eth0", nameCandidate(b, 1)}},
		{"templates clash", State{Attachments: []api.Attachment{att("x", "team-b-web"), att("y", "team-b-web")}}, nil,
			[]string{"team-b-web", nameCandidate(att("y", "team-b-web"), 1)}},
		{"file name is never taken", State{Attachments: []api.Attachment{att("x", "files")}}, nil,
			[]string{nameCandidate(att("x", "files"), 1)}},
		{"API name is never taken", State{Namespaces: []api.Namespace{{Name: "api"}}, Attachments: []api.Attachment{att("x", "api")}}, nil,
			[]string{nameCandidate(att("x", "api"), 1)}},
		{"a given name is kept", State{Attachments: []api.Attachment{a, b}},
			map[api.AttachmentKey]string{b.AttachmentKey: "cni-cnitool-0a1b-eth0"},
			[]string{nameCandidate(a, 1), "cni-cnitool-0a1b-eth0"}},
		{"a foreign previous name is not kept", State{Attachments: []api.Attachment{a}},
			map[api.AttachmentKey]string{a.AttachmentKey: "files"},
			[]string{"cni-cnitool-0a1b-eth0"}},
		{"suffixed names clash too", State{Attachments: []api.Attachment{a, att("z", nameCandidate(b, 1)), b}}, nil,
			[]string{"cni-cnitool-0a1b-eth0", nameCandidate(b, 1), nameCandidate(b, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assignNames(file, &tc.st, tc.prev)
			var got []string
			for _, x := range tc.st.Attachments {
				got = append(got, x.Name)
				if !hooks.ValidName(x.Name) {
					t.Errorf("invalid name %q", x.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("names %v, want %v", got, tc.want)
			}
		})
	}
	long := att("x", strings.Repeat("n", 255))
	if c := nameCandidate(long, 1); len(c) > maxGivenName || !strings.HasSuffix(c, "-"+hooks.KeyHash(hooks.AttachmentKey{ContainerID: "x", IfName: "eth0"})[:8]) {
		t.Fatalf("long name's fallback %q (%d bytes)", c, len(c))
	}
}

// putAttachment registers netns as attachment id/eth0 asking for name.
func (td *testDaemon) putAttachment(id, name, netnsName string) (int, api.Attachment, api.Error) {
	td.t.Helper()
	var got api.Attachment
	code, e := td.call("POST", "/v1/attachments", api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: id, IfName: "eth0"},
		Netns: "/var/run/netns/" + netnsName, Name: name}, &got)
	return code, got, e
}

func (td *testDaemon) registryIdentity(name string) netns.Identity {
	td.t.Helper()
	h, err := td.d.reg.Get(name)
	if err != nil {
		td.t.Fatalf("registry %q: %v", name, err)
	}
	return h.Identity()
}

func nsIdentity(t *testing.T, name string) netns.Identity {
	h, err := netns.OpenPath("/var/run/netns/"+name, name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return h.Identity()
}

// TestAttachmentNameClash: attachments whose requested names clash all
// register (no 409 that would fail CNI ADD), under different names, each
// pointing at its own namespace, and keep them across a restart.
func TestAttachmentNameClash(t *testing.T) {
	a, b := testns.New(t, "A"), testns.New(t, "B")
	state := filepath.Join(t.TempDir(), "state.json")
	td := startTestDaemon(t, baseCfg, state)
	names := map[string]string{}
	for _, x := range []struct{ id, name, ns string }{
		{"cnitool-0a1bffffffffffffffff", "", a},
		{"cnitool-0a1b0000000000000000", "", b},
	} {
		code, got, e := td.putAttachment(x.id, x.name, x.ns)
		if code != http.StatusCreated {
			t.Fatalf("attachment %s: %d %+v", x.id, code, e)
		}
		names[x.ns] = got.Name
	}
	if names[a] != "cni-cnitool-0a1b-eth0" || names[b] == names[a] || !strings.HasPrefix(names[b], names[a]+"-") {
		t.Fatalf("names %v", names)
	}
	for ns, n := range names {
		if td.registryIdentity(n) != nsIdentity(t, ns) {
			t.Fatalf("%s does not point at %s", n, ns)
		}
	}
	// A repeated ADD (update) of either keeps its name.
	if code, got, e := td.putAttachment("cnitool-0a1b0000000000000000", "", b); code != http.StatusOK || got.Name != names[b] {
		t.Fatalf("update: %d %+v %+v", code, got, e)
	}

	// A restart on the same state gives the same names.
	td2 := startTestDaemon(t, baseCfg, state)
	for ns, n := range names {
		if td2.registryIdentity(n) != nsIdentity(t, ns) {
			t.Fatalf("after restart %s does not point at %s", n, ns)
		}
	}
}

// TestAttachmentNeverTakesFileName: a container whose name template gives
// the name of a namespace of the files registers under another name; the
// files' name keeps pointing at the files' namespace.
func TestAttachmentNeverTakesFileName(t *testing.T) {
	file, ctr := testns.New(t, "F"), testns.New(t, "C")
	cfg := baseCfg + fmt.Sprintf("backend other\n    server s 127.0.0.1:80 namespace %s\n", file)
	td := startTestDaemon(t, cfg, "")
	want := nsIdentity(t, file)
	if got := td.registryIdentity(file); got != want {
		t.Fatalf("before: %v, want %v", got, want)
	}
	code, got, e := td.putAttachment("pod-1", file, ctr)
	if code != http.StatusCreated {
		t.Fatalf("attachment named like a file namespace: %d %+v", code, e)
	}
	if got.Name == file {
		t.Fatalf("the attachment was given the files' name %q", file)
	}
	if id := td.registryIdentity(file); id != want {
		t.Fatalf("the files' name %q was repointed to %v (the container), want %v", file, id, want)
	}
	if id := td.registryIdentity(got.Name); id != nsIdentity(t, ctr) {
		t.Fatalf("the attachment's name %q points at %v", got.Name, id)
	}
}

// TestAddNamespaceOwnedName: POST /v1/namespaces refuses a name that the
// files or an attachment own, and says who owns it.
func TestAddNamespaceOwnedName(t *testing.T) {
	file, ctr, other := testns.New(t, "F"), testns.New(t, "C"), testns.New(t, "O")
	cfg := baseCfg + fmt.Sprintf("backend other\n    server s 127.0.0.1:80 namespace %s\n", file)
	td := startTestDaemon(t, cfg, "")
	if code, _, e := td.putAttachment("pod-1", "taken-by-pod", ctr); code != http.StatusCreated {
		t.Fatalf("attachment: %d %+v", code, e)
	}
	for _, tc := range []struct{ name, owner string }{
		{file, "configuration files"},
		{"taken-by-pod", "attachment pod-1/eth0"},
	} {
		code, e := td.call("POST", "/v1/namespaces", api.Namespace{Name: tc.name, Path: "/var/run/netns/" + other}, nil)
		if code != http.StatusConflict || !strings.Contains(e.Error+strings.Join(e.Details, " "), tc.owner) {
			t.Errorf("POST namespace %q: %d %+v, want 409 naming %q", tc.name, code, e, tc.owner)
		}
	}
	if id := td.registryIdentity(file); id != nsIdentity(t, file) {
		t.Fatalf("the files' name %q was repointed", file)
	}
}

// TestReloadTakesAttachmentName: files that start to name what an
// attachment holds get the name; the attachment moves to its next name
// and keeps pointing at its own namespace.
func TestReloadTakesAttachmentName(t *testing.T) {
	file, ctr := testns.New(t, "F"), testns.New(t, "C")
	td := startTestDaemon(t, baseCfg, "")
	if code, got, e := td.putAttachment("pod-1", file, ctr); code != http.StatusCreated || got.Name != file {
		t.Fatalf("attachment: %d %+v %+v", code, got, e)
	}
	cfg := baseCfg + fmt.Sprintf("backend other\n    server s 127.0.0.1:80 namespace %s\n", file)
	if err := os.WriteFile(td.d.opt.ConfigFiles[0], []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := td.d.Reload(); err != nil {
		t.Fatal(err)
	}
	given := td.d.attachmentName(api.AttachmentKey{ContainerID: "pod-1", IfName: "eth0"})
	if given == file || given == "" {
		t.Fatalf("after reload the attachment is named %q", given)
	}
	if id := td.registryIdentity(file); id != nsIdentity(t, file) {
		t.Fatalf("the files' name %q points at %v, not the files' namespace", file, id)
	}
	if id := td.registryIdentity(given); id != nsIdentity(t, ctr) {
		t.Fatalf("the attachment's name %q points at %v", given, id)
	}
}

// FuzzAssignNames: whatever the hooks ask for, every attachment gets a
// valid name of its own that the files and the API do not own, and a
// second pass with the names given changes nothing.
func FuzzAssignNames(f *testing.F) {
	f.Add("cnitool-0a1bffff", "cnitool-0a1b0000", "", "", "files")
	f.Add("x", "y", "team-b-web", "team-b-web", "api")
	f.Add("a", "b", "files", strings.Repeat("n", 255), "")
	f.Add("a/b", "a-b", "", "../x", "cni-a-b-eth0")
	f.Fuzz(func(t *testing.T, id1, id2, name1, name2, api1 string) {
		file := &config.Config{Namespaces: []config.NamespaceRef{{Name: "files"}}}
		st := State{Namespaces: []api.Namespace{{Name: api1}}}
		for i, x := range [][2]string{{id1, name1}, {id2, name2}, {id1 + "z", name1}} {
			st.Attachments = append(st.Attachments, api.Attachment{
				AttachmentKey: api.AttachmentKey{ContainerID: x[0], IfName: fmt.Sprint("eth", i)}, Name: x[1]})
		}
		assignNames(file, &st, nil)
		seen := map[string]bool{}
		for _, a := range st.Attachments {
			if !hooks.ValidName(a.Name) || a.Name == "files" || a.Name == api1 || seen[a.Name] {
				t.Fatalf("names %+v", st.Attachments)
			}
			seen[a.Name] = true
		}
		again := st.clone()
		assignNames(file, &again, givenNames(st))
		for i := range st.Attachments {
			if again.Attachments[i].Name != st.Attachments[i].Name {
				t.Fatalf("a second pass moved %q to %q", st.Attachments[i].Name, again.Attachments[i].Name)
			}
		}
	})
}
