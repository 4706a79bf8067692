package ocihook

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/hooks"
)

func TestParseExpose(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []hooks.PortMapping
		err  string
	}{
		{"", nil, ""},
		{"8080:80", []hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}, ""},
		{"8080:80, 127.0.0.1:8443:443/TCP ,53:53/udp", []hooks.PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 8443, ContainerPort: 443, Protocol: "tcp", HostIP: "127.0.0.1"},
			{HostPort: 53, ContainerPort: 53, Protocol: "udp"}}, ""},
		{"[::1]:8080:80", []hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "::1"}}, ""},
		{"80", nil, "write HOSTPORT:CONTAINERPORT"},
		{"1:2:3:4", nil, "write HOSTPORT"},
		{"0:80", nil, "1 to 65535"},
		{"8080:99999", nil, "1 to 65535"},
		{"x:80", nil, "1 to 65535"},
		{"host:8080:80", nil, "not an IP"},
		{"8080:80/icmp", nil, "protocol"},
		{"[::1:8080:80", nil, "unclosed"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseExpose(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		pid     int
	}{
		{`{"ociVersion":"1.0.2","id":"abc","status":"creating","pid":42,"bundle":"/b","annotations":{"nsproxy.io/expose":"8080:80"}}`, "", 42},
		{`{"id":"abc","status":"stopped"}`, "", 0},
		{`{"status":"created","pid":1}`, "no id", 0},
		{`{"id":"a","pid":-1}`, "negative pid", 0},
		{`not json`, "not OCI state", 0},
	} {
		st, err := ParseState([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || st.Pid != tc.pid {
			t.Errorf("%s: %+v %v", tc.in, st, err)
		}
	}
}

func TestNamespaceName(t *testing.T) {
	if got := namespaceName("0123456789abcdef"); got != "oci-0123456789ab" {
		t.Fatal(got)
	}
	if got := namespaceName("a/b c"); got != "oci-a-b-c" {
		t.Fatal(got)
	}
}

// TestFileName: one file per container ID, readable when the ID is a
// name already; IDs sharing 12 characters (or differing only in bytes
// outside the name rule) never share a file.
func TestFileName(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"0123456789abcdef", "oci-0123456789abcdef"},
		{"web.1_a:b", "oci-web.1_a:b"},
	} {
		if got := fileName(tc.id); got != tc.want {
			t.Errorf("fileName(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	seen := map[string]string{}
	for _, id := range []string{"0123456789abcdef", "0123456789abXXXX", "a/b", "a-b", "a+b", strings.Repeat("x", 300),
		strings.Repeat("x", 301), "", "."} {
		n := fileName(id)
		if !hooks.ValidName(n) || len(n) > maxFileName || !strings.HasPrefix(n, "oci-") {
			t.Errorf("fileName(%q) = %q: not a valid file name", id, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("ids %q and %q share the file %q", id, other, n)
		}
		seen[n] = id
	}
}

func FuzzParseExpose(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:1:2/udp", "[::1]:1:2", "", ",,,", "[", "1:2:3:4/x", "65535:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseExpose(s)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.HostPort < 1 || m.HostPort > 65535 || m.ContainerPort < 1 || m.ContainerPort > 65535 {
				t.Fatalf("%q gave out-of-range %+v", s, m)
			}
			if m.Protocol != "tcp" && m.Protocol != "udp" && m.Protocol != "sctp" {
				t.Fatalf("%q gave protocol %q", s, m.Protocol)
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"id":"a","pid":1,"annotations":{"k":"v"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"","pid":-5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err == nil && (st.ID == "" || st.Pid < 0) {
			t.Fatalf("accepted %q", b)
		}
		if err == nil && !strings.HasPrefix(namespaceName(st.ID), "oci-") {
			t.Fatal("name without prefix")
		}
		if n := fileName(st.ID); err == nil && (!hooks.ValidName(n) || len(n) > maxFileName) {
			t.Fatalf("id %q gives the file name %q", st.ID, n)
		}
	})
}
