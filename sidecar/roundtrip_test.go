package sidecar

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// TestGetIsValidPost: what GET returns is valid POST input. Durations were
// printed in Go's form ("1m30s"), which the HAProxy time format, and so
// POST, refuses.
func TestGetIsValidPost(t *testing.T) {
	td := startTestDaemon(t, baseCfg, "")
	be := api.Backend{Name: "rt", ConnectTimeout: "90s", ServerTimeout: "1500ms",
		Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:19350", Check: true, Inter: "2m"}}}
	if code, e := td.call("POST", "/v1/backends", be, nil); code != 201 {
		t.Fatalf("POST backend: %d %s %v", code, e.Error, e.Details)
	}
	fe := api.Frontend{Name: "rt", Backend: "rt", ClientTimeout: "90s", Binds: []api.Bind{{Addr: "127.0.0.1:19351"}}}
	if code, e := td.call("POST", "/v1/frontends", fe, nil); code != 201 {
		t.Fatalf("POST frontend: %d %s %v", code, e.Error, e.Details)
	}
	var gotBe api.Backend
	var gotFe api.Frontend
	td.call("GET", "/v1/backends/rt", nil, &gotBe)
	td.call("GET", "/v1/frontends/rt", nil, &gotFe)
	if gotBe.ConnectTimeout != "90s" || gotBe.ServerTimeout != "1500ms" || len(gotBe.Servers) != 1 || gotBe.Servers[0].Inter != "2m" {
		t.Errorf("GET backend: %+v", gotBe)
	}
	if gotFe.ClientTimeout != "90s" {
		t.Errorf("GET frontend: client timeout %q", gotFe.ClientTimeout)
	}
	// The GET answers, renamed, go back in as they are.
	gotBe.Name = "rt2"
	if code, e := td.call("POST", "/v1/backends", gotBe, nil); code != 201 {
		t.Errorf("POST of GET's backend: %d %s %v", code, e.Error, e.Details)
	}
	gotFe.Name, gotFe.Backend = "rt2", "rt2"
	gotFe.Binds[0].Addr = "127.0.0.1:19352"
	if code, e := td.call("POST", "/v1/frontends", gotFe, nil); code != 201 {
		t.Errorf("POST of GET's frontend: %d %s %v", code, e.Error, e.Details)
	}
}

// TestAPIObjectsInheritDefaults: objects created through the API inherit
// the files' last defaults section and a file backend's default-server,
// as sections written after the files would. Before, they got only the
// built-in values (README: "inherit nothing").
func TestAPIObjectsInheritDefaults(t *testing.T) {
	cfg := "defaults\n    timeout client 7s\n    timeout connect 2s\n    balance leastconn\n    default-server inter 5s weight 3\n" +
		"frontend web\n    bind 127.0.0.1:24530\n    default_backend web\n" +
		"backend web\n    default-server weight 9\n    server s1 127.0.0.1:24531\n"
	td := startTestDaemon(t, cfg, "")
	calls := []struct {
		path string
		body any
	}{
		{"/v1/backends", api.Backend{Name: "rt", Servers: []api.Server{{Name: "s", Addr: "127.0.0.1:24532"}}}},
		{"/v1/frontends", api.Frontend{Name: "rt", Backend: "rt", Binds: []api.Bind{{Addr: "127.0.0.1:24533"}}}},
		{"/v1/backends/web/servers", api.Server{Name: "s2", Addr: "127.0.0.1:24534"}},
	}
	for _, c := range calls {
		if code, e := td.call("POST", c.path, c.body, nil); code != 201 {
			t.Fatalf("POST %s: %d %s %v", c.path, code, e.Error, e.Details)
		}
	}
	var be, web api.Backend
	var fe api.Frontend
	td.call("GET", "/v1/backends/rt", nil, &be)
	td.call("GET", "/v1/backends/web", nil, &web)
	td.call("GET", "/v1/frontends/rt", nil, &fe)
	if be.Balance != "leastconn" || be.ConnectTimeout != "2s" || len(be.Servers) != 1 || *be.Servers[0].Weight != 3 || be.Servers[0].Inter != "5s" {
		t.Errorf("API backend did not inherit the defaults: %+v %+v", be, be.Servers)
	}
	if fe.ClientTimeout != "7s" {
		t.Errorf("API frontend did not inherit timeout client: %+v", fe)
	}
	if len(web.Servers) != 2 || *web.Servers[1].Weight != 9 || web.Servers[1].Inter != "5s" {
		t.Errorf("server added to backend web did not inherit its default-server: %+v", web.Servers)
	}
}

// TestGetIsValidPostEveryFieldDaemon: an object that sets every field,
// POSTed, read back with GET, renamed and POSTed again, reads back the
// same: the control API round-trips every field.
func TestGetIsValidPostEveryFieldDaemon(t *testing.T) {
	td := startTestDaemon(t, baseCfg, "")
	be := everyBackend
	be.Servers = slices.Clone(be.Servers)
	be.Servers[0].Namespace = "" // no namespace n1 here: keep the listeners' logs quiet
	fe := everyFrontend
	fe.Binds = slices.Clone(fe.Binds)
	fe.Binds[0].Namespace = ""
	if code, e := td.call("POST", "/v1/backends", be, nil); code != 201 {
		t.Fatalf("POST backend: %d %s %v", code, e.Error, e.Details)
	}
	if code, e := td.call("POST", "/v1/frontends", fe, nil); code != 201 {
		t.Fatalf("POST frontend: %d %s %v", code, e.Error, e.Details)
	}
	var gotBe, gotBe2 api.Backend
	var gotFe, gotFe2 api.Frontend
	td.call("GET", "/v1/backends/be", nil, &gotBe)
	td.call("GET", "/v1/frontends/fe", nil, &gotFe)
	if gotBe.ServerFinTimeout != "1500ms" || gotBe.CheckTimeout != "2m" || gotBe.UseSrc != "clientip" || gotBe.SourceAddr != "0.0.0.0" ||
		gotBe.Servers[2].Addr != "*:+1000" || gotBe.Servers[3].Addr != "[fd00::1]:-10" || gotBe.Servers[1].Namespace != "*" {
		t.Errorf("GET backend: %+v", gotBe)
	}
	if gotFe.ClientFinTimeout != "1m" || gotFe.ProxyHeaderTimeout != "3s" || !gotFe.LenientNetnsTLV ||
		!slices.Equal(gotFe.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/64"}) || gotFe.Binds[3].Addr != "0.0.0.0:24503" {
		t.Errorf("GET frontend: %+v", gotFe)
	}
	gotBe.Name = "be2"
	if code, e := td.call("POST", "/v1/backends", gotBe, nil); code != 201 {
		t.Fatalf("POST of GET's backend: %d %s %v", code, e.Error, e.Details)
	}
	gotFe.Name, gotFe.Backend = "fe2", "be2"
	for i := range gotFe.Binds {
		gotFe.Binds[i].Addr = strings.Replace(gotFe.Binds[i].Addr, ":245", ":246", 1)
	}
	if code, e := td.call("POST", "/v1/frontends", gotFe, nil); code != 201 {
		t.Fatalf("POST of GET's frontend: %d %s %v", code, e.Error, e.Details)
	}
	td.call("GET", "/v1/backends/be2", nil, &gotBe2)
	td.call("GET", "/v1/frontends/fe2", nil, &gotFe2)
	for i := range gotBe2.Servers {
		gotBe2.Servers[i].Up, gotBe.Servers[i].Up = false, false
		gotBe.Servers[i].Backend = "be2"
	}
	gotBe2.Name = "be2"
	if !reflect.DeepEqual(gotBe2, gotBe) {
		t.Errorf("backend after GET, POST, GET:\n%+v, want\n%+v", gotBe2, gotBe)
	}
	gotFe2.Listeners, gotFe.Listeners = nil, nil
	if !reflect.DeepEqual(gotFe2, gotFe) {
		t.Errorf("frontend after GET, POST, GET:\n%+v, want\n%+v", gotFe2, gotFe)
	}
}
