package ocihook

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestRunDaemonDown: with the daemon down, createRuntime names the
// namespace and leaves a record for the daemon to replay (a warning, no
// failure); poststop removes both. A state the hook cannot act on fails
// and touches nothing.
func TestRunDaemonDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a network namespace")
	}
	netnsDir, records := t.TempDir(), t.TempDir()
	var warnings []string
	h := Hook{Client: hooks.NewClient(filepath.Join(t.TempDir(), "down.sock"), hooks.WithTimeout(time.Second)),
		NetnsDir: netnsDir, RecordDir: records, Warn: func(msg string) { warnings = append(warnings, msg) }}
	st := State{ID: "0123456789abcdef", Status: "creating", Pid: ownNetnsPid(t),
		Annotations: map[string]string{AnnExpose: "18080:80", AnnTenant: "t1", hooks.MetaTarget: "loopback", "other": "x"}}
	file := filepath.Join(netnsDir, fileName(st.ID))
	t.Cleanup(func() { h.stop(context.Background(), st) })
	ctx := context.Background()

	if err := h.Run(ctx, "prestart", State{ID: st.ID, Status: "creating"}); err == nil || !strings.Contains(err.Error(), "nothing to do") {
		t.Errorf("no pid: %v", err)
	}
	if err := h.Run(ctx, "createRuntime", State{ID: st.ID, Pid: st.Pid, Annotations: map[string]string{AnnExpose: "80"}}); err == nil {
		t.Error("a bad expose annotation was accepted")
	}
	if entries, _ := os.ReadDir(netnsDir); len(entries) != 0 {
		t.Errorf("a failed start left %v", entries)
	}

	if err := h.Run(ctx, "createRuntime", st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("namespace not named: %v", err)
	}
	a, err := hooks.ReadRecord(records, hooks.AttachmentKey{ContainerID: st.ID, IfName: IfName})
	if err != nil {
		t.Fatal(err)
	}
	if a.Netns != file || a.Name != "oci-0123456789ab" || a.Tenant != "t1" || a.Source != hooks.SourceOCI ||
		len(a.PortMappings) != 1 || a.PortMappings[0].HostPort != 18080 || a.Metadata[hooks.MetaTarget] != "loopback" ||
		a.Metadata["other"] != "" {
		t.Errorf("record %+v", a)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "daemon unavailable") {
		t.Errorf("warnings %q", warnings)
	}

	if err := h.Run(ctx, "poststop", st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("namespace still named: %v", err)
	}
	if list, errs := hooks.ListRecords(records); len(list) != 0 || len(errs) != 0 {
		t.Errorf("records left: %v %v", list, errs)
	}
}

// TestRunRecordsGivenName: when the daemon registers the attachment under
// another name than the one asked (it was taken), the record asks for the
// name given from then on, so that a restarted daemon, which replays the
// records in file order, gives this container the same name again.
func TestRunRecordsGivenName(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a network namespace")
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a hooks.Attachment
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		a.Name += "-given"
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	netnsDir, records := t.TempDir(), t.TempDir()
	var warnings []string
	h := Hook{Client: hooks.NewClient(sock, hooks.WithTimeout(5*time.Second)), NetnsDir: netnsDir, RecordDir: records,
		Warn: func(msg string) { warnings = append(warnings, msg) }}
	st := State{ID: "fedcba9876543210", Status: "creating", Pid: ownNetnsPid(t)}
	t.Cleanup(func() { netns.Detach(netnsDir, fileName(st.ID)) })
	if err := h.Run(context.Background(), "createRuntime", st); err != nil {
		t.Fatal(err)
	}
	a, err := hooks.ReadRecord(records, hooks.AttachmentKey{ContainerID: st.ID, IfName: IfName})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "oci-fedcba987654-given" {
		t.Errorf("record asks for %q, want the name the daemon gave, oci-fedcba987654-given (warnings %q)", a.Name, warnings)
	}
}
