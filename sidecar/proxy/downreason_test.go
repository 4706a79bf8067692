package proxy

import "testing"

// TestDownReasonAgreesWithUsable: stats report a server up exactly when the
// balancer would pick it, and say which part of the rule fails otherwise.
func TestDownReasonAgreesWithUsable(t *testing.T) {
	present := func(name string) bool { return name != "gone" }
	for _, tc := range []struct {
		name    string
		spec    ServerSpec
		checkUp bool
		want    string
	}{
		{"up", ServerSpec{Weight: 1}, true, ""},
		{"client namespace", ServerSpec{Weight: 1, ClientNamespace: true}, true, ""},
		{"disabled", ServerSpec{Weight: 1, Disabled: true}, true, DownDisabled},
		{"disabled beats the rest", ServerSpec{Weight: 0, Disabled: true, Namespace: "gone"}, false, DownDisabled},
		{"weight 0", ServerSpec{Weight: 0}, true, DownWeightZero},
		{"namespace missing, unchecked", ServerSpec{Weight: 1, Namespace: "gone"}, true, DownNoNamespace},
		{"namespace missing, checks failing", ServerSpec{Weight: 1, Namespace: "gone"}, false, DownNoNamespace},
		{"check failed", ServerSpec{Weight: 1, Namespace: "here"}, false, DownCheck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer("b", tc.spec)
			s.up.Store(tc.checkUp)
			got := s.downReason(present)
			if got != tc.want {
				t.Errorf("downReason = %q, want %q", got, tc.want)
			}
			if s.usable(present) != (got == "") {
				t.Errorf("usable = %v but downReason = %q", s.usable(present), got)
			}
		})
	}
}
