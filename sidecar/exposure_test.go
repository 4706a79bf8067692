package sidecar

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/testns"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestExposureFamilies: a mapping without hostIP listens on both families
// ([::] v4v6); an explicit hostIP on its own family; an adopted port keeps
// the runtime's socket.
func TestExposureFamilies(t *testing.T) {
	tests := []struct {
		name   string
		hostIP string
		meta   map[string]string
		want   string
		v4v6   bool
	}{
		{name: "no hostIP", want: "[::]:8080", v4v6: true},
		{name: "0.0.0.0", hostIP: "0.0.0.0", want: "0.0.0.0:8080"},
		{name: "::", hostIP: "::", want: "[::]:8080"},
		{name: "127.0.0.1", hostIP: "127.0.0.1", want: "127.0.0.1:8080"},
		{name: "adopt", meta: map[string]string{hooks.MetaHostPorts: "adopt"}, want: "0.0.0.0:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Netns: "/x",
				IPs: []string{"10.1.2.3/24"}, Metadata: tt.meta,
				PortMappings: []api.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: tt.hostIP}}}
			xs, problems := exposuresFor(a, netns.DefaultTenant)
			if len(xs) != 1 || len(problems) != 0 {
				t.Fatalf("exposures %v problems %v", xs, problems)
			}
			if b := xs[0].bind; b.Addr.String() != tt.want || b.V4V6 != tt.v4v6 {
				t.Errorf("bind %s v4v6=%v, want %s v4v6=%v", b.Addr, b.V4V6, tt.want, tt.v4v6)
			}
		})
	}
}

// TestExposureConflictReported: the answer to the attachment's POST already
// reports a host port that another program holds, and nothing is exposed.
func TestExposureConflictReported(t *testing.T) {
	td := startTestDaemon(t, "# attachments only\n", "")
	ns := testns.New(t, "X")
	holder, err := net.Listen("tcp4", "127.0.0.1:24551")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c0ffee", IfName: "eth0"},
		Netns: filepath.Join("/var/run/netns", ns), IPs: []string{"10.9.8.7/24"},
		PortMappings: []api.PortMapping{{HostPort: 24551, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
			{HostPort: 24552, ContainerPort: 81, Protocol: "tcp", HostIP: "127.0.0.1"}}}
	var got api.Attachment
	if code, e := td.call("POST", "/v1/attachments", a, &got); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	if len(got.Exposed) != 1 || !strings.HasSuffix(got.Exposed[0], "-24552") {
		t.Errorf("exposed %v, want only the free port 24552", got.Exposed)
	}
	if x := got.Exposures; len(x) != 1 || x[0].PortMapping != a.PortMappings[1] || len(got.Exposed) != 1 || x[0].Frontend != got.Exposed[0] {
		t.Errorf("exposures %+v, want only the mapping of 24552 and its frontend %v", x, got.Exposed)
	}
	if p := strings.Join(got.Problems, "; "); !strings.Contains(p, "127.0.0.1:24551: conflict: in use by another program") {
		t.Errorf("problems %q, want the conflict on 24551", p)
	}
}

// TestFrontendV4V6RoundTrips: a frontend POSTed with a v4v6 bind is shown
// with it by GET; v4v6 on an IPv4 address is refused.
func TestFrontendV4V6RoundTrips(t *testing.T) {
	td := startTestDaemon(t, "backend be\n    server s 127.0.0.1:24561\n", "")
	f := api.Frontend{Name: "both", Binds: []api.Bind{{Addr: "[::1]:24560", V4V6: true}}, Backend: "be"}
	if code, e := td.call("POST", "/v1/frontends", f, nil); code != 201 {
		t.Fatalf("POST: %d %+v", code, e)
	}
	var got api.Frontend
	if code, e := td.call("GET", "/v1/frontends/both", nil, &got); code != 200 || len(got.Binds) != 1 || !got.Binds[0].V4V6 {
		t.Fatalf("GET: %d %+v %+v", code, e, got)
	}
	bad := api.Frontend{Name: "bad", Binds: []api.Bind{{Addr: "127.0.0.1:24562", V4V6: true}}, Backend: "be"}
	if code, e := td.call("POST", "/v1/frontends", bad, nil); code != 400 || !strings.Contains(strings.Join(e.Details, ";"), "v4v6 applies to IPv6 addresses") {
		t.Fatalf("POST v4v6 on IPv4: %d %+v", code, e)
	}
}

// TestExposureNamesKeepThePort: an attachment may ask for a name of up to
// 255 bytes; its exposures' names are cut to 200, and each keeps its host
// port, so two mappings never share a frontend name.
func TestExposureNamesKeepThePort(t *testing.T) {
	for _, n := range []int{10, 195, 200, hooks.MaxNameLen} {
		a := api.Attachment{AttachmentKey: api.AttachmentKey{ContainerID: "c1", IfName: "eth0"}, Netns: "/x",
			Name: strings.Repeat("n", n), IPs: []string{"10.1.2.3"},
			PortMappings: []api.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 8081, ContainerPort: 81}}}
		xs, problems := exposuresFor(a, netns.DefaultTenant)
		if len(xs) != 2 || len(problems) != 0 {
			t.Fatalf("name of %d: exposures %v problems %v", n, xs, problems)
		}
		for i, x := range xs {
			name, port := x.frontend.Name, a.PortMappings[i].HostPort
			if len(name) > 200 || !strings.HasSuffix(name, fmt.Sprintf("-%d", port)) || !hooks.ValidName(name) {
				t.Errorf("name of %d: exposure of %d is named %q (%d bytes)", n, port, name, len(name))
			}
		}
	}
}
