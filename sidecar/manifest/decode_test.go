package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

const head = "apiVersion: nsproxy.io/v1alpha1\n"

// tenant is a minimal valid Tenant document named name, with spec lines
// appended (each indented by the caller).
func tenant(name, spec string) string {
	return head + "kind: Tenant\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func TestDecodeGood(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		in   string
		want Set
	}{
		{"empty file", "", Set{}},
		{"only comments and empty documents", "# nothing\n---\n---\n# still nothing\n...\n", Set{}},
		{"tenant without spec", head + "kind: Tenant\nmetadata: {name: a}\n",
			Set{Tenants: []Tenant{{Meta: Meta{Name: "a"}}}}},
		{"tenant", tenant("acme", `  namespaces: [{name: n1}, {name: n2, path: /run/netns/x}]
  select:
    - {network: "net-*", labels: {app: web}}
  access: {groups: [ops], users: ["1000"]}
  proxy: {netnsTLV: true, trustedProxies: [10.0.0.0/8, 192.0.2.1]}
  limits: {maxConnections: 10, maxListeners: 2, maxExposedPorts: 3}
  frontends:
    - name: web
      binds: [{addr: "0.0.0.0:80", acceptProxy: true}]
      backend: app
      maxconn: 100
  backends:
    - name: app
      servers: [{name: s1, addr: "10.0.0.1:80", weight: 0, backend: app}]
`), Set{Tenants: []Tenant{{Meta: Meta{Name: "acme"}, Spec: TenantSpec{
			Namespaces: []StaticNamespace{{Name: "n1"}, {Name: "n2", Path: "/run/netns/x"}},
			Select:     []Selector{{Network: "net-*", Labels: map[string]string{"app": "web"}}},
			Access:     Access{Groups: []string{"ops"}, Users: []string{"1000"}},
			Proxy:      ProxyPolicy{NetnsTLV: &yes, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}},
			Limits:     Limits{MaxConnections: 10, MaxListeners: 2, MaxExposedPorts: 3},
			Frontends:  []api.Frontend{{Name: "web", Binds: []api.Bind{{Addr: "0.0.0.0:80", AcceptProxy: true}}, Backend: "app", MaxConn: 100}},
			Backends:   []api.Backend{{Name: "app", Servers: []api.Server{{Name: "s1", Addr: "10.0.0.1:80", Weight: new(int)}}}},
		}}}}},
		{"status fields of get are accepted and dropped", tenant("a", `  frontends:
    - {name: w, tenant: a, binds: [{addr: ":80"}], backend: b, source: api, current: 3, total: 9, bytesIn: 1, bytesOut: 2, listeners: [{addr: ":80", namespace: x, listening: true}]}
  backends:
    - {name: b, tenant: a, source: api, servers: [{name: s, addr: "1.2.3.4:5", up: true, active: 1, total: 2, connectErrors: 0}]}
`), Set{Tenants: []Tenant{{Meta: Meta{Name: "a"}, Spec: TenantSpec{
			Frontends: []api.Frontend{{Name: "w", Binds: []api.Bind{{Addr: ":80"}}, Backend: "b"}},
			Backends:  []api.Backend{{Name: "b", Servers: []api.Server{{Name: "s", Addr: "1.2.3.4:5"}}}},
		}}}}},
		{"exposure and service, several documents", head + `kind: Exposure
metadata: {name: web, tenant: acme}
spec: {select: {podName: "web-*"}, containerPort: 8080, portRange: 30000-30010, sendProxyV2: true}
---
` + head + `kind: Service
metadata: {name: db, tenant: acme, labels: {x: "1"}}
spec: {select: {}, listen: "127.0.0.1:5432", target: {addr: "10.0.0.5:5432", namespace: db, sendProxy: 2}}
`, Set{
			Exposures: []Exposure{{Meta: Meta{Name: "web", Tenant: "acme"}, Spec: ExposureSpec{
				Select: Selector{PodName: "web-*"}, ContainerPort: 8080, PortRange: "30000-30010", SendProxyV2: true}}},
			Services: []Service{{Meta: Meta{Name: "db", Tenant: "acme", Labels: map[string]string{"x": "1"}}, Spec: ServiceSpec{
				Listen: "127.0.0.1:5432", Target: Endpoint{Addr: "10.0.0.5:5432", Namespace: "db", SendProxy: 2}}}},
		}},
		{"null is not set", tenant("a", "  namespaces: ~\n  limits: null\n"), Set{Tenants: []Tenant{{Meta: Meta{Name: "a"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode("m.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalSets(got, tt.want) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

// equalSets compares Sets without their positions.
func equalSets(a, b Set) bool {
	return reflect.DeepEqual(stripped(a), stripped(b))
}

func stripped(s Set) Set {
	s.Positions = nil
	s.Tenants = append([]Tenant(nil), s.Tenants...)
	s.Exposures = append([]Exposure(nil), s.Exposures...)
	s.Services = append([]Service(nil), s.Services...)
	for i := range s.Tenants {
		s.Tenants[i].Meta.Pos = Pos{}
	}
	for i := range s.Exposures {
		s.Exposures[i].Meta.Pos = Pos{}
	}
	for i := range s.Services {
		s.Services[i].Meta.Pos = Pos{}
	}
	return s
}

func TestDecodeBad(t *testing.T) {
	exposure := func(spec string) string {
		return head + "kind: Exposure\nmetadata: {name: x, tenant: t}\nspec:\n" + spec
	}
	service := func(spec string) string {
		return head + "kind: Service\nmetadata: {name: s, tenant: t}\nspec:\n" + spec
	}
	tests := []struct {
		name string
		in   string
		want []string // every error, in order
	}{
		{"syntax", "apiVersion: [x\n", []string{
			`m.yaml:1:13: YAML syntax: did not find expected ',' or ']'; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"tab indentation", "a:\n\tb: 1\n", []string{
			`m.yaml:2:1: YAML syntax: found character that cannot start any token; check the indentation (spaces, no tabs), quotes and brackets`}},
		// yaml.v3 names the line where the enclosing block starts (here
		// 1, 2 or 5), or none; the error is where the mistake is.
		{"syntax: indentation deep in a block", "a:\n  b:\n    c: 1\n    d: 2\n   e: 3\n", []string{
			`m.yaml:5:4: YAML syntax: did not find expected key; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"syntax: after a quoted string", "a: 1\nb: \"x y\" z\n", []string{
			`m.yaml:2:10: YAML syntax: did not find expected key; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"syntax: multi-line flow and string before it", "a: [x,\n  y]\nb: 'c\n  d'\nc: \u00e9\u00e9: y\n", []string{
			`m.yaml:5:4: YAML syntax: mapping values are not allowed in this context; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"syntax: CRLF, second document", head + "kind: Tenant\r\nmetadata: {name: a}\r\n---\r\nb:\r\n  - c\r\n  d: 1\r\n", []string{
			`m.yaml:7:3: YAML syntax: did not find expected '-' indicator; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"syntax: unclosed flow", "a: [x,\n  y,\n  z\nb: 1\n", []string{
			`m.yaml:3:3: YAML syntax: did not find expected ',' or ']'; check the indentation (spaces, no tabs), quotes and brackets`}},
		{"NUL byte", "a: 1\nb: x\x00y\n", []string{
			`m.yaml:2:5: the control character 0x00 is not allowed in YAML; remove the byte 0x00`}},
		{"DEL after CRLF lines", "a: 1\r\n\r\nb: \"\x7f\"\r\n", []string{
			`m.yaml:3:5: the control character 0x7f is not allowed in YAML; remove the byte 0x7f`}},
		{"C1 control", "# \u00e9\u0085x: \u0080\n", []string{
			`m.yaml:2:4: the character U+0080 is not allowed in YAML; remove the bytes c2 80`}},
		{"bad UTF-8", "a: \"caf\xe9\"\n", []string{
			`m.yaml:1:8: invalid UTF-8; remove the byte 0xe9 (manifests are UTF-8 text)`}},
		{"not a mapping", "- a\n", []string{
			`m.yaml:1:1: a document is a mapping of apiVersion, kind, metadata and spec, not a list; see manifests/README.md`}},
		{"no apiVersion, no kind", "metadata: {name: a}\n", []string{
			`m.yaml:1:1: apiVersion is missing; add apiVersion: nsproxy.io/v1alpha1`,
			`m.yaml:1:1: kind is missing; add kind: Tenant, Exposure or Service`}},
		{"wrong apiVersion", "apiVersion: v1\nkind: Tenant\nmetadata: {name: a}\n", []string{
			`m.yaml:1:13: apiVersion "v1" is not supported; write apiVersion: nsproxy.io/v1alpha1`}},
		{"unknown kind", head + "kind: tenant\nmetadata: {name: a}\n", []string{
			`m.yaml:2:7: unknown kind "tenant"; did you mean Tenant?`}},
		{"kind not a string", head + "kind: [Tenant]\n", []string{
			`m.yaml:2:7: kind: want a string, not a list`}},
		{"unknown top-level field", tenant("a", "") + "status: {}\n", []string{
			`m.yaml:6:1: unknown field "status"; the fields here are apiVersion, kind, metadata, spec`}},
		{"no metadata", head + "kind: Tenant\n", []string{
			`m.yaml:1:1: metadata is missing; add metadata: {name: NAME}`}},
		{"no name", head + "kind: Tenant\nmetadata: {labels: {a: b}}\n", []string{
			`m.yaml:3:11: metadata.name: missing; add name: NAME`}},
		{"invalid name", head + "kind: Tenant\nmetadata: {name: a/b}\n", []string{
			`m.yaml:3:18: metadata.name: "a/b" is not a valid name; names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`}},
		{"name a number", head + "kind: Tenant\nmetadata: {name: 42}\n", []string{
			`m.yaml:3:18: metadata.name: want a string, not the number 42; quote it: "42"`}},
		{"tenant of a tenant", head + "kind: Tenant\nmetadata: {name: a, tenant: b}\n", []string{
			`m.yaml:3:29: metadata.tenant: a Tenant belongs to no tenant; remove metadata.tenant`}},
		{"duplicate tenants", tenant("a", "") + "---\n" + tenant("a", ""), []string{
			`m.yaml:10:9: metadata.name: Tenant "a" is defined twice (first at m.yaml:1:1); rename or remove one`}},
		{"duplicate key", tenant("a", "  limits: {maxListeners: 1, maxListeners: 2}\n"), []string{
			`m.yaml:6:29: field "maxListeners" is given twice (first at line 6); remove one`}},
		{"unknown field with suggestion", tenant("a", "  frontend: []\n"), []string{
			`m.yaml:6:3: unknown field "frontend" in spec; did you mean "frontends"?`}},
		{"unknown field of an api type", tenant("a", "  frontends:\n    - {name: w, binds: [{addr: ':1', acceptproxy: true}], backend: b, maxcon: 1}\n"), []string{
			`m.yaml:7:38: unknown field "acceptproxy" in spec.frontends[0].binds[0]; did you mean "acceptProxy"?`,
			`m.yaml:7:71: unknown field "maxcon" in spec.frontends[0]; did you mean "maxconn"?`}},
		{"wrong types", tenant("a", "  limits: {maxConnections: \"10\", maxListeners: 1.5}\n  proxy: {netnsTLV: yes}\n  namespaces: {name: x}\n"), []string{
			`m.yaml:6:28: spec.limits.maxConnections: want a whole number, not the string "10"; remove the quotes`,
			`m.yaml:6:48: spec.limits.maxListeners: want a whole number, not the number 1.5`,
			`m.yaml:7:21: spec.proxy.netnsTLV: want true or false, not the string "yes"`,
			`m.yaml:8:15: spec.namespaces: want a list, not a mapping; write each item on a line starting with "- "`}},
		{"number out of range", tenant("a", "  limits: {maxConnections: 99999999999999999999}\n"), []string{
			`m.yaml:6:28: spec.limits.maxConnections: 99999999999999999999 is not a whole number in range; write a decimal number`}},
		{"hex number", tenant("a", "  limits: {maxConnections: 0x10}\n"), []string{
			`m.yaml:6:28: spec.limits.maxConnections: 0x10 is not a whole number in range; write a decimal number`}},
		{"anchor and alias", tenant("a", "  access: {groups: &g [x]}\n  proxy: {trustedProxies: *g}\n"), []string{
			`m.yaml:6:20: anchor &g: anchors are not supported; remove it and write values out`,
			`m.yaml:7:27: alias *g: aliases are not supported; write the value out`}},
		{"label key not a string", tenant("a", "  select: [{labels: {1: x}}]\n"), []string{
			`m.yaml:6:22: spec.select[0].labels: a key must be a string, not the number 1; quote it: "1"`}},
		{"tenant spec problems", tenant("a", `  namespaces: [{name: "a b"}, {name: n}, {name: n, path: rel}, {path: /x}]
  select: [{}, {source: k8s, podName: "[a"}]
  access: {groups: [""], users: ["a b"]}
  proxy: {trustedProxies: [10.0.0.0/33]}
  limits: {maxListeners: -1}
`), []string{
			`m.yaml:6:23: spec.namespaces[0].name: "a b" is not a valid namespace name; namespace names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`,
			`m.yaml:6:49: spec.namespaces[2].name: namespace "n" is listed twice (first at m.yaml:6:38); remove one`,
			`m.yaml:6:58: spec.namespaces[2].path: "rel" is not an absolute path; write the path of a namespace file, e.g. /run/netns/NAME or /proc/PID/ns/net, or leave path out`,
			`m.yaml:6:64: spec.namespaces[3]: name is missing; add name: NAME (the namespace's name under the netns directory)`,
			`m.yaml:7:12: spec.select[0]: an empty selector would claim every container of the host; give at least one of source, network, podNamespace, podName, containerName, labels, annotations`,
			`m.yaml:7:25: spec.select[1].source: "k8s" is not a source; write cni or oci, or leave source out (both)`,
			`m.yaml:7:39: spec.select[1].podName: "[a" is not a valid pattern; use * ? and [a-z] (escape with \), and close every [`,
			`m.yaml:8:21: spec.access.groups[0]: "" is not a unix group name; write a name or a numeric id`,
			`m.yaml:8:34: spec.access.users[0]: "a b" is not a unix user name; write a name or a numeric id`,
			`m.yaml:9:28: spec.proxy.trustedProxies[0]: invalid network "10.0.0.0/33"; write an address or CIDR such as 10.0.0.0/8`,
			`m.yaml:10:26: spec.limits.maxListeners: -1 is negative; write 0 (no cap) or more`}},
		{"frontends and backends", tenant("a", `  frontends:
    - {name: w, binds: [{}]}
    - {name: "w", binds: [{addr: ":1"}], backend: b}
    - {binds: [], backend: b}
  backends:
    - name: b
      servers: [{name: s, addr: ":1"}, {name: s}, {addr: ":1", backend: c}]
    - {name: "b!"}
`), []string{
			`m.yaml:7:7: spec.frontends[0]: backend is missing; add backend: NAME, a backend of this tenant`,
			`m.yaml:7:25: spec.frontends[0].binds[0]: addr is missing; add addr: IP:PORT`,
			`m.yaml:8:14: spec.frontends[1].name: frontend "w" is defined twice (first at m.yaml:7:14); rename or remove one`,
			`m.yaml:9:7: spec.frontends[2]: name is missing; add name: NAME`,
			`m.yaml:9:7: spec.frontends[2]: binds are missing; add binds: [{addr: IP:PORT}]`,
			`m.yaml:12:40: spec.backends[0].servers[1]: addr is missing; add addr: IP:PORT`,
			`m.yaml:12:47: spec.backends[0].servers[1].name: server "s" is defined twice (first at m.yaml:12:24); rename or remove one`,
			`m.yaml:12:51: spec.backends[0].servers[2]: name is missing; add name: NAME`,
			`m.yaml:12:73: spec.backends[0].servers[2].backend: the server is listed under backend "b" but names backend "c"; remove backend:`,
			`m.yaml:13:14: spec.backends[1].name: "b!" is not a valid backend name; names are made of A-Z a-z 0-9 . _ : -`}},
		{"frontend and backend of another tenant", tenant("a", "  frontends: [{name: w, tenant: b, binds: [{addr: ':1'}], backend: b}]\n  backends: [{name: b, tenant: c}]\n"), []string{
			`m.yaml:6:33: spec.frontends[0].tenant: the object is listed under Tenant "a" but names tenant "b"; remove tenant:`,
			`m.yaml:7:32: spec.backends[0].tenant: the object is listed under Tenant "a" but names tenant "c"; remove tenant:`}},
		{"static namespace of two tenants", tenant("a", "  namespaces: [{name: n}]\n") + "---\n" + tenant("b", "  namespaces: [{name: n}]\n"), []string{
			`m.yaml:13:23: namespace "n" belongs to tenant "a" already; a namespace belongs to at most one tenant`}},
		{"exposure without spec", head + "kind: Exposure\nmetadata: {name: x}\n", []string{
			`m.yaml:1:1: spec is missing; add the spec of the Exposure (see manifests/README.md)`,
			`m.yaml:3:11: metadata: tenant is missing; add tenant: NAME, the Tenant this Exposure belongs to`}},
		{"exposure without ports", exposure("  select: {}\n"), []string{
			`m.yaml:5:3: spec.containerPort: missing; give a port 1-65535`,
			`m.yaml:5:3: spec: the host port is missing; give hostPort: PORT (one port) or portRange: LOW-HIGH (one port of it per container)`}},
		{"exposure problems", exposure("  containerPort: 70000\n  hostPort: 80\n  portRange: 10-5\n  target: host\n  hostAddr: fe80::1%eth0\n  maxconn: -2\n  select: {network: 'a[', labels: {'': x}}\n"), []string{
			`m.yaml:5:18: spec.containerPort: 70000 is not a port; give a port 1-65535`,
			`m.yaml:7:14: spec.portRange: "10-5" is not a port range; write LOW-HIGH with 1 <= LOW <= HIGH <= 65535, e.g. 30000-30999`,
			`m.yaml:7:14: spec.portRange: give hostPort or portRange, not both`,
			`m.yaml:8:11: spec.target: "host" is not a target; write ip (the container's address) or loopback (127.0.0.1 in its namespace)`,
			`m.yaml:9:13: spec.hostAddr: "fe80::1%eth0" is not an IP address; write e.g. 0.0.0.0, 192.0.2.1 or ::`,
			`m.yaml:10:12: spec.maxconn: -2 is negative; write 0 (no cap) or more`,
			`m.yaml:11:21: spec.select.network: "a[" is not a valid pattern; use * ? and [a-z] (escape with \), and close every [`,
			`m.yaml:11:35: spec.select.labels: a key is empty; write the label's key`}},
		{"exposure hostPort range", exposure("  containerPort: 80\n  hostPort: -1\n"), []string{
			`m.yaml:6:13: spec.hostPort: -1 is not a port; give a port 1-65535`}},
		{"service missing addresses", service("  select: {}\n"), []string{
			`m.yaml:5:3: listen is missing; add listen: IP:PORT, the address inside each container, e.g. 127.0.0.1:5432`,
			`m.yaml:5:3: target.addr is missing; add addr: IP:PORT, the service's address, e.g. 10.0.0.5:5432`}},
		{"service problems", service("  listen: localhost:5432\n  target: {addr: '10.0.0.1:0', namespace: ../x, sendProxy: 3}\n"), []string{
			`m.yaml:5:11: spec.listen: "localhost:5432" is not IP:PORT with a port 1-65535; write the address inside each container, e.g. 127.0.0.1:5432`,
			`m.yaml:6:18: spec.target.addr: "10.0.0.1:0" is not IP:PORT with a port 1-65535; write the service's address, e.g. 10.0.0.5:5432`,
			`m.yaml:6:43: spec.target.namespace: "../x" is not a valid namespace name; namespace names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`,
			`m.yaml:6:60: spec.target.sendProxy: 3 is not a PROXY version; write 1 or 2, or leave it out (none)`}},
		{"every document is checked", "kind: Nope\n---\n" + tenant("ok", "") + "---\n" + head + "kind: Tenant\nmetadata: {name: '.'}\n", []string{
			`m.yaml:1:1: apiVersion is missing; add apiVersion: nsproxy.io/v1alpha1`,
			`m.yaml:1:7: unknown kind "Nope"; write Tenant, Exposure or Service`,
			`m.yaml:11:18: metadata.name: "." is not a valid name; names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`}},
		{"too large", strings.Repeat("#", MaxSize+1), []string{
			`m.yaml: manifests larger than 1048576 bytes (this file, or with the files before it); split them and apply them apart`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode("m.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", s)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v is neither ErrInvalid nor ErrTooLarge", err)
			}
			if s.Tenants != nil || s.Exposures != nil || s.Services != nil || s.Positions != nil {
				t.Errorf("Set on error = %+v, want empty", s)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A billion-laughs document is refused at once, without expanding it.
func TestDecodeBillionLaughs(t *testing.T) {
	var b strings.Builder
	b.WriteString(head + "kind: Tenant\nmetadata: {name: a}\nspec:\n  x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("  x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err := Decode("lol.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "lol.yaml:5:7: anchor &a0: anchors are not supported") {
		t.Fatalf("err = %v", err)
	}
}

func TestWhere(t *testing.T) {
	s, err := Decode("w.yaml", []byte(tenant("acme", `  frontends:
    - name: web
      binds:
        - addr: ":80"
        - addr: ":81"
      backend: b
`)+"---\n"+head+"kind: Exposure\nmetadata: {name: web, tenant: acme}\nspec:\n  containerPort: 80\n  hostPort: 8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"Tenant/acme":                                 "w.yaml:1:1",
		"Tenant/acme.metadata.name":                   "w.yaml:4:9",
		"Tenant/acme.spec.frontends[0].binds[1].addr": "w.yaml:10:17",
		"Tenant/acme.spec.frontends[0].binds[9]":      "w.yaml:9:9", // the list
		"Tenant/acme.spec.frontends[0].maxconn":       "w.yaml:7:7", // the frontend
		"Exposure/web.spec.hostPort":                  "w.yaml:18:13",
		"Exposure/web":                                "w.yaml:13:1",
		"Service/none":                                "",
	} {
		if got := s.Where(path).String(); got != want {
			t.Errorf("Where(%q) = %q, want %q", path, got, want)
		}
	}
	if got := s.Tenants[0].Meta.Pos.String(); got != "w.yaml:1:1" {
		t.Errorf("Meta.Pos = %s", got)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yml", tenant("b", ""))
	write("a.yaml", tenant("a", ""))
	write("c.txt", "not a manifest")
	write(".#a.yaml", "an editor's lock file")
	if err := syscall.Mkfifo(filepath.Join(dir, "z.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "z.yaml: not a regular file") {
		t.Fatalf("a FIFO: %v, want not a regular file", err)
	}
	os.Remove(filepath.Join(dir, "z.yaml"))
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tenants) != 2 || s.Tenants[0].Meta.Name != "a" || s.Tenants[1].Meta.Name != "b" {
		t.Fatalf("tenants = %+v, want a then b", s.Tenants)
	}
	if got, want := s.Where("Tenant/b").String(), filepath.Join(dir, "b.yml")+":1:1"; got != want {
		t.Errorf("Where(Tenant/b) = %s, want %s", got, want)
	}

	write("c.yaml", tenant("a", ""))
	_, err = Load(dir)
	if want := filepath.Join(dir, "c.yaml") + `:4:9: metadata.name: Tenant "a" is defined twice (first at ` + filepath.Join(dir, "a.yaml") + ":1:1); rename or remove one"; err == nil || err.Error() != want {
		t.Errorf("duplicate across files: %v, want %s", err, want)
	}

	write("d.yaml", "#"+strings.Repeat("x", MaxSize-2*len(tenant("a", ""))))
	if _, err = Load(dir); !errors.Is(err, ErrTooLarge) {
		t.Errorf("directory over MaxSize: %v, want ErrTooLarge", err)
	}

	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoDocuments) {
		t.Errorf("empty directory: %v, want ErrNoDocuments", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"frontends", "backends", "namespaces", "select"}
	for got, want := range map[string]string{"frontend": "frontends", "Backends": "backends", "selector": "select", "zzz": "", "namespace": "namespaces"} {
		if s := suggest(got, known); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}

// The tenant field of an API object type: in a manifest it must be the
// enclosing Tenant's, and is cleared (by the field's JSON name).
func TestImpliedTenant(t *testing.T) {
	type object struct {
		Name   string `json:"name"`
		Tenant string `json:"tenant,omitempty"`
	}
	d := newDecoder()
	d.prefix = "Tenant/a"
	same, other := object{Name: "f", Tenant: "a"}, object{Name: "g", Tenant: "b"}
	d.impliedTenant("Tenant/a.spec.frontends[0]", "a", &same)
	if same.Tenant != "" || len(d.probs) != 0 {
		t.Errorf("same tenant: %+v, %v", same, d.probs.err())
	}
	d.impliedTenant("Tenant/a.spec.frontends[1]", "a", &other)
	if err := d.probs.err(); err == nil || err.Error() != `spec.frontends[1].tenant: the object is listed under Tenant "a" but names tenant "b"; remove tenant:` {
		t.Errorf("other tenant: %v", err)
	}
}
