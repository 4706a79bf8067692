package cniplugin_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

// fakeDaemon serves the daemon's attachment endpoints on a unix socket and
// behaves like it where the plugin can tell: it exposes each TCP mapping
// as "<name>-<hostPort>", reports UDP mappings and host port conflicts as
// problems, refuses a name another attachment uses (409) and a relative
// netns (400). It records every call.
type fakeDaemon struct {
	t      *testing.T
	socket string
	srv    *httptest.Server

	mu       sync.Mutex
	atts     []hooks.Attachment // in registration order
	calls    []string           // "METHOD path"
	notReady bool
	state    string       // State of every attachment; "": available
	override http.Handler // answers instead of the fake when set
}

// set changes the fake's behaviour under its lock.
func (d *fakeDaemon) set(f func(d *fakeDaemon)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "nspc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &fakeDaemon{t: t, socket: filepath.Join(dir, "d.sock")}
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = httptest.NewUnstartedServer(d.handler())
	d.srv.Listener = ln
	d.srv.Start()
	t.Cleanup(d.stop)
	return d
}

// stop makes the daemon unreachable (the socket file goes too).
func (d *fakeDaemon) stop() {
	d.srv.Close()
	os.Remove(d.socket)
}

func (d *fakeDaemon) callList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func (d *fakeDaemon) attachment(k hooks.AttachmentKey) (hooks.Attachment, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.atts, func(a hooks.Attachment) bool { return a.AttachmentKey == k })
	if i < 0 {
		return hooks.Attachment{}, false
	}
	return d.status(d.atts[i]), true
}

func (d *fakeDaemon) keys() []hooks.AttachmentKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []hooks.AttachmentKey
	for _, a := range d.atts {
		out = append(out, a.AttachmentKey)
	}
	return out
}

// put registers a directly, as another source would.
func (d *fakeDaemon) put(a hooks.Attachment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.atts = append(d.atts, a)
}

func nsName(a hooks.Attachment) string {
	if a.Name != "" {
		return a.Name
	}
	id := a.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	return "cni-" + id + "-" + a.IfName
}

// status fills in the status fields of a; earlier attachments
// win host ports. d.mu is held.
func (d *fakeDaemon) status(a hooks.Attachment) hooks.Attachment {
	a.State = hooks.StateAvailable
	if d.state != "" {
		a.State = d.state
	}
	used := map[int]bool{}
	for _, x := range d.atts {
		if x.AttachmentKey == a.AttachmentKey {
			break
		}
		for _, pm := range x.PortMappings {
			used[pm.HostPort] = true
		}
	}
	for _, pm := range a.PortMappings {
		switch {
		case pm.Protocol != "" && pm.Protocol != "tcp":
			a.Problems = append(a.Problems, fmt.Sprintf("%s mapping %d->%d not proxied", pm.Protocol, pm.HostPort, pm.ContainerPort))
		case used[pm.HostPort]:
			a.Problems = append(a.Problems, fmt.Sprintf("host port %d is already in use; not exposed", pm.HostPort))
		default:
			name := fmt.Sprintf("%s-%d", nsName(a), pm.HostPort)
			a.Exposures = append(a.Exposures, hooks.Exposure{PortMapping: pm, Frontend: name})
			a.Exposed = append(a.Exposed, name)
		}
	}
	return a
}

func (d *fakeDaemon) handler() http.Handler {
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if v != nil {
			json.NewEncoder(w).Encode(v)
		}
	}
	fail := func(w http.ResponseWriter, code int, msg string) {
		reply(w, code, map[string]any{"error": msg, "details": []string{"from the fake daemon"}})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/readyz", func(w http.ResponseWriter, r *http.Request) {
		if d.notReady {
			fail(w, 503, "not ready")
			return
		}
		reply(w, 200, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		var out []hooks.Attachment
		for _, a := range d.atts {
			out = append(out, d.status(a))
		}
		reply(w, 200, out)
	})
	mux.HandleFunc("GET /v1/attachments/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		k := hooks.AttachmentKey{ContainerID: r.PathValue("id"), IfName: r.PathValue("ifname")}
		for _, a := range d.atts {
			if a.AttachmentKey == k {
				reply(w, 200, d.status(a))
				return
			}
		}
		fail(w, 404, "attachment not found")
	})
	mux.HandleFunc("POST /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		var a hooks.Attachment
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			fail(w, 400, err.Error())
			return
		}
		if a.ContainerID == "" || a.IfName == "" || !strings.HasPrefix(a.Netns, "/") {
			fail(w, 400, "attachment is invalid")
			return
		}
		if a.State != "" || a.Exposures != nil || a.Exposed != nil || a.Problems != nil {
			fail(w, 400, "status fields sent")
			return
		}
		code := 201
		i := slices.IndexFunc(d.atts, func(x hooks.Attachment) bool { return x.AttachmentKey == a.AttachmentKey })
		for _, x := range d.atts {
			if x.AttachmentKey != a.AttachmentKey && nsName(x) == nsName(a) {
				fail(w, 409, fmt.Sprintf("namespace name %q is used by attachment %s/%s", nsName(a), x.ContainerID, x.IfName))
				return
			}
		}
		if i >= 0 {
			d.atts[i], code = a, 200
		} else {
			d.atts = append(d.atts, a)
		}
		reply(w, code, d.status(a))
	})
	mux.HandleFunc("DELETE /v1/attachments/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		k := hooks.AttachmentKey{ContainerID: r.PathValue("id"), IfName: r.PathValue("ifname")}
		d.atts = slices.DeleteFunc(d.atts, func(a hooks.Attachment) bool { return a.AttachmentKey == k })
		reply(w, 204, nil)
	})
	mux.HandleFunc("POST /v1/attachments/gc", func(w http.ResponseWriter, r *http.Request) {
		fail(w, 500, "the plugin must not use the global gc endpoint")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.calls = append(d.calls, r.Method+" "+r.URL.Path)
		if o := d.override; o != nil {
			d.mu.Unlock()
			o.ServeHTTP(w, r)
			return
		}
		defer d.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}
