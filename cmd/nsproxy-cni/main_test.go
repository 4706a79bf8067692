package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The binary as a runtime sees it: stdout carries only the result or the
// error object, exit status says which.
func TestBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nsproxy-cni")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	down := filepath.Join(dir, "no-daemon.sock")
	conf := func(v string, extra string) string {
		return `{"cniVersion":"` + v + `","name":"net","type":"nsproxy-cni","socket":"` + down +
			`","attachmentDir":"` + filepath.Join(dir, "att") + `"` + extra + `}`
	}
	tests := []struct {
		name    string
		env     []string
		stdin   string
		code    int    // CNI error code; 0: success
		stdout  string // in stdout
		inAbout string // in stderr
	}{
		{name: "VERSION", env: []string{"CNI_COMMAND=VERSION"},
			stdout: `"supportedVersions":["0.4.0","1.0.0","1.1.0"]`},
		{name: "about", inAbout: "CNI protocol versions supported: 0.4.0, 1.0.0, 1.1.0"},
		{name: "ADD unchained", env: []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/proc/1/ns/net", "CNI_IFNAME=eth0", "CNI_PATH=/x"},
			stdin: conf("1.1.0", ""), code: 7, stdout: "chained plugin"},
		{name: "DEL netns empty, daemon down", env: []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=c1", "CNI_IFNAME=eth0", "CNI_PATH=/x"},
			stdin: conf("1.1.0", "")},
		{name: "DEL netns gone, 0.4.0", env: []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=c1", "CNI_NETNS=/var/run/netns/gone-nsproxy", "CNI_IFNAME=eth0", "CNI_PATH=/x"},
			stdin: conf("0.4.0", "")},
		{name: "STATUS daemon down", env: []string{"CNI_COMMAND=STATUS", "CNI_PATH=/x"},
			stdin: conf("1.1.0", "")}, // ADD works with the record alone
		{name: "STATUS daemon down, strict", env: []string{"CNI_COMMAND=STATUS", "CNI_PATH=/x"},
			stdin: conf("1.1.0", `,"strict":true`), code: 50, stdout: "not available"},
		{name: "STATUS before 1.1.0", env: []string{"CNI_COMMAND=STATUS", "CNI_PATH=/x"},
			stdin: conf("1.0.0", ""), code: 1},
		{name: "GC daemon down", env: []string{"CNI_COMMAND=GC", "CNI_PATH=/x"},
			stdin: conf("1.1.0", `,"cni.dev/valid-attachments":[]`), code: 11},
		{name: "unsupported version", env: []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=c1", "CNI_IFNAME=eth0", "CNI_PATH=/x"},
			stdin: conf("0.3.1", ""), code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = tt.env
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if (err != nil) != (tt.code != 0) {
				t.Fatalf("exit %v, stdout %s, stderr %s", err, stdout.String(), stderr.String())
			}
			if tt.code != 0 {
				var e struct {
					Code uint   `json:"code"`
					Msg  string `json:"msg"`
				}
				if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
					t.Fatalf("stdout is not one error object: %q", stdout.String())
				}
				if e.Code != uint(tt.code) {
					t.Errorf("code %d, want %d: %s", e.Code, tt.code, stdout.String())
				}
			} else if tt.stdout == "" && stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not have %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.inAbout) {
				t.Errorf("stderr %q does not have %q", stderr.String(), tt.inAbout)
			}
		})
	}
}
