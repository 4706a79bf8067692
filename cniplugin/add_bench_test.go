package cniplugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/nsproxy/nsproxy/cniplugin"
	"github.com/nsproxy/nsproxy/hooks"
)

// BenchmarkAdd splits what nsproxy-cni adds to a container's ADD, in
// process (the process start is measured by bench/churn.sh's caller:
// CNI_COMMAND=VERSION in a loop): the whole Add against a daemon that
// answers at once, the record alone (temp file, write, rename; not
// fsynced, see hooks.WriteRecord), and the daemon's round trip alone.
// The record lives on the disk of the test's temp directory.
//
//	go test -run '^$' -bench BenchmarkAdd ./cniplugin/
func BenchmarkAdd(b *testing.B) {
	sock := answeringDaemon(b)
	dir := filepath.Join(b.TempDir(), "attachments")
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "benchnet", "type": "nsproxy-cni",
		"socket": sock, "attachmentDir": dir, "prevResult": prevResult("1.1.0"),
		"runtimeConfig": map[string]any{"portMappings": []any{map[string]any{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}}})
	args := func(i int) *skel.CmdArgs {
		return &skel.CmdArgs{ContainerID: fmt.Sprintf("bench%08d", i), IfName: "eth0", Netns: "/proc/self/ns/net",
			NetnsOverride: "1", Path: "/opt/cni/bin", StdinData: conf}
	}
	b.Run("add", func(b *testing.B) {
		p := &cniplugin.Plugin{Stdout: io.Discard, Stderr: io.Discard, Timeout: 2 * time.Second}
		for i := 0; i < b.N; i++ {
			if err := p.Add(args(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	a := hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "bench", IfName: "eth0"}, Netns: "/proc/self/ns/net",
		Source: hooks.SourceCNI, IPs: []string{"10.233.7.5/24"}, PortMappings: []hooks.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	b.Run("record", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			a.ContainerID = fmt.Sprintf("rec%08d", i)
			if err := hooks.WriteRecord(dir, a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("daemon", func(b *testing.B) {
		c := hooks.NewClient(sock)
		for i := 0; i < b.N; i++ {
			if _, err := c.PutAttachment(b.Context(), a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// answeringDaemon answers every attachment PUT/POST with the attachment,
// at once: what is left of the round trip is the plugin's.
func answeringDaemon(b *testing.B) string {
	dir, err := os.MkdirTemp("", "nspcb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(bytes.TrimSpace(body))
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return sock
}
