package hooks

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"web-0.team_b:x", "web-0.team_b:x"},
		{"a/b c", "a-b-c"},
		{"../x", "..-x"},
		{"é", "--"},
		{"a\x00b", "a-b"},
	} {
		if got := SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The validator checks every section name with it.
	if n := testing.AllocsPerRun(100, func() { _ = SanitizeName("web-0.team_b:x") }); n != 0 {
		t.Errorf("SanitizeName of a valid name allocates %v times", n)
	}
}

func TestWithSuffix(t *testing.T) {
	for _, tc := range []struct {
		name, suffix string
		max          int
		want         string
	}{
		{"cni-abc-eth0", "1a2b3c4d", 180, "cni-abc-eth0-1a2b3c4d"},
		{"abcdef", "12", 6, "abc-12"},
		{"abc", "12345", 3, "-12345"},
	} {
		if got := WithSuffix(tc.name, tc.suffix, tc.max); got != tc.want {
			t.Errorf("WithSuffix(%q, %q, %d) = %q, want %q", tc.name, tc.suffix, tc.max, got, tc.want)
		}
	}
}

func TestKeyHash(t *testing.T) {
	a := KeyHash(AttachmentKey{ContainerID: "ab", IfName: "c"})
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("KeyHash = %q", a)
	}
	if a != KeyHash(AttachmentKey{ContainerID: "ab", IfName: "c"}) || a == KeyHash(AttachmentKey{ContainerID: "a", IfName: "bc"}) {
		t.Fatal("KeyHash is not a function of both parts")
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", "..", "a/b", "web-0", "\xff\x00", strings.Repeat("x", 300)} {
		f.Add(s, "1a2b3c4d")
	}
	f.Fuzz(func(t *testing.T, s, suffix string) {
		n := SanitizeName(s)
		if len(n) != len(s) {
			t.Fatalf("SanitizeName(%q) changed the length: %q", s, n)
		}
		for i := 0; i < len(n); i++ {
			if !nameByte(n[i]) {
				t.Fatalf("SanitizeName(%q) = %q keeps byte %q", s, n, n[i])
			}
		}
		if SanitizeName(n) != n {
			t.Fatalf("SanitizeName is not idempotent on %q", n)
		}
		if w := WithSuffix(n, suffix, MaxNameLen); len(w) > MaxNameLen && len(suffix) < MaxNameLen || !strings.HasSuffix(w, "-"+suffix) {
			t.Fatalf("WithSuffix(%q, %q) = %q", n, suffix, w)
		}
	})
}

// TestValidName is the one namespace-name rule, as the configuration, the
// registry, the control API and PROXY NETNS TLVs apply it.
func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"netns1", true},
		{"a", true},
		{"cni-1234abcd-5678", true},
		{"tenant-a.b_c:1", true},
		{"a..b", true},
		{"...", true},
		{".hidden", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"a/b", false},
		{"/var/run/netns/x", false},
		{"../x", false},
		{"*", false},
		{"x\x00", false},
		{"a b", false},
		{"é", false},
		{"a\nb", false},
		{"a%b", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// FuzzValidName: a valid name is what SanitizeName keeps, of the right
// length, and never a path element that leaves its directory.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b", "netns1", "é", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && len(s) <= MaxNameLen && s != "." && s != ".." && SanitizeName(s) == s
		if got := ValidName(s); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", s, got, want)
		}
		if ValidName(s) && (strings.Contains(s, "/") || filepath.Base(s) != s) {
			t.Fatalf("valid name %q is a path", s)
		}
	})
}
