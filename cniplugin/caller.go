package cniplugin

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
)

// EnvRuntime names the runtime instead of its executable, set in the
// runtime's environment (libcni passes it on to plugins): for a runtime
// whose executable's path changes with upgrades, or two runtimes of one
// executable. ADD and GC of one runtime must see the same value.
const EnvRuntime = "NSPROXY_CNI_RUNTIME"

func (p *Plugin) runtime() string {
	if p.Runtime != "" {
		return p.Runtime
	}
	return callerRuntime()
}

// callerRuntime is the executable of the plugin's parent, the runtime
// that runs it: libcni executes plugins from the runtime's own process
// (podman, containerd, crio, cnitool), for ADD as for GC. "": unknown.
func callerRuntime() string {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", os.Getppid()))
	if err != nil {
		return ""
	}
	return executablePath(link)
}

// executablePath is the path of a /proc/PID/exe link's target: a binary
// replaced on disk since the process started (a runtime upgraded in place)
// reads "PATH (deleted)", and is still the runtime at PATH.
func executablePath(link string) string {
	return strings.TrimSuffix(link, " (deleted)")
}

// logKept says which stale attachments GC kept because another runtime
// (or a plugin that did not record one: "") made them.
func logKept(log *slog.Logger, kept map[hooks.AttachmentKey]string) {
	byRuntime := map[string]int{}
	for _, r := range kept {
		byRuntime[r]++
	}
	runtimes := make([]string, 0, len(byRuntime))
	for r := range byRuntime {
		runtimes = append(runtimes, r)
	}
	sort.Strings(runtimes)
	for _, r := range runtimes {
		other := r
		if other == "" {
			other = "unknown (added by an older nsproxy-cni)"
		}
		log.Info("attachments not in the valid list kept: another runtime made them", "other", other, "count", byRuntime[r])
	}
}
