package cniplugin

import (
	"fmt"
	"os"
	"testing"
)

func TestExecutablePath(t *testing.T) {
	for _, tc := range []struct{ link, want string }{
		{"/usr/bin/podman", "/usr/bin/podman"},
		{"/usr/bin/containerd (deleted)", "/usr/bin/containerd"}, // upgraded in place while running
		{"/opt/x (deleted) (deleted)", "/opt/x (deleted)"},
		{"/opt/my (deleted) runtime", "/opt/my (deleted) runtime"},
		{"", ""},
	} {
		if got := executablePath(tc.link); got != tc.want {
			t.Errorf("executablePath(%q) = %q, want %q", tc.link, got, tc.want)
		}
	}
}

// TestCallerRuntime: the runtime is the plugin's parent's executable.
func TestCallerRuntime(t *testing.T) {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", os.Getppid()))
	if err != nil {
		t.Skipf("cannot read the parent's executable: %v", err)
	}
	if got := callerRuntime(); got != executablePath(want) || got == "" {
		t.Errorf("callerRuntime() = %q, want %q", got, want)
	}
}
