package sidecar

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// FuzzRuntimeObjects feeds API bodies through the path the control socket
// uses: JSON decoding and conversion into the model. It must never panic,
// and an accepted server keeps exactly its own name and namespace.
func FuzzRuntimeObjects(f *testing.F) {
	for _, s := range []string{
		`{"name":"b","servers":[{"name":"s","addr":"127.0.0.1:80","namespace":"n1","check":true,"inter":"2s","weight":3}]}`,
		`{"name":"b","servers":[{"name":"s","addr":"10.0.0.1:80 namespace evil"}]}`,
		`{"name":"b","balance":"leastconn","connectTimeout":"5s","servers":[{"name":"s","addr":"*","namespace":"*","sendProxy":2}]}`,
		`{"name":"b #","servers":[]}`,
		`{"name":"b","servers":[{"name":"s\ncheck","addr":"1.2.3.4:5"}]}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	empty := &config.Config{}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b api.Backend
		if json.Unmarshal(body, &b) != nil {
			return
		}
		m, err := merge(empty, State{Backends: []api.Backend{b}}, nil)
		if err != nil {
			return
		}
		if len(m.Backends) != 1 || m.Backends[0].Name != b.Name || len(m.Backends[0].Servers) != len(b.Servers) {
			t.Fatalf("accepted %q but the model differs: %+v", body, m.Backends)
		}
		for i, s := range m.Backends[0].Servers {
			in := b.Servers[i]
			ns := s.Namespace
			if s.ClientNamespace {
				ns = "*"
			}
			if s.Name != in.Name || ns != in.Namespace {
				t.Fatalf("server %+v became %q namespace %q", in, s.Name, ns)
			}
		}
	})
}

// FuzzStateFile: any bytes in the state file load or are quarantined with
// an error; never a panic, never a half-read state.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"namespaces":[{"name":"a","allowed":true}]}`))
	f.Add([]byte(`{"version":1,"attachments":[{"containerID":"c","ifname":"eth0","netns":"/x"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"x":1}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		mustWrite(t, path, string(b))
		st, err := (&store{path: path}).load()
		if err != nil {
			if len(st.Namespaces)+len(st.Backends)+len(st.Frontends)+len(st.Servers)+len(st.Attachments) != 0 {
				t.Fatal("error with a partial state")
			}
			if _, serr := os.Stat(path); serr == nil {
				t.Fatal("corrupt state left in place")
			}
		}
	})
}
