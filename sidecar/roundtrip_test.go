package sidecar

import (
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
