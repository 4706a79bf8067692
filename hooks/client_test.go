package hooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// serveUnix serves h on a unix socket in a short temporary directory
// (socket paths are limited to 108 bytes) until the test ends.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nsph")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func TestClient(t *testing.T) {
	var gotPut hooks.Attachment
	var gotGC map[string][]hooks.AttachmentKey
	var deleted []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&gotPut)
		if gotPut.Name == "bad" {
			writeJSON(w, 400, map[string]any{"error": "attachment c/eth0 is invalid", "details": []string{"name: no"}})
			return
		}
		out := gotPut
		out.State, out.Exposed = hooks.StateAvailable, []string{"x-8080"}
		writeJSON(w, 201, out)
	})
	mux.HandleFunc("GET /v1/attachments/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "c/1" {
			writeJSON(w, 404, map[string]any{"error": "attachment not found"})
			return
		}
		writeJSON(w, 200, hooks.Attachment{AttachmentKey: hooks.AttachmentKey{ContainerID: "c/1", IfName: r.PathValue("ifname")}})
	})
	mux.HandleFunc("GET /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []hooks.Attachment{{AttachmentKey: hooks.AttachmentKey{ContainerID: "a", IfName: "b"}}})
	})
	mux.HandleFunc("DELETE /v1/attachments/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		deleted = append(deleted, r.PathValue("id")+"/"+r.PathValue("ifname"))
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /v1/attachments/gc", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&gotGC)
		writeJSON(w, 200, map[string]any{"removed": []hooks.AttachmentKey{{ContainerID: "old", IfName: "eth0"}}})
	})
	mux.HandleFunc("GET /v1/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(503)
		w.Write([]byte("starting\n"))
	})
	c := hooks.NewClient(serveUnix(t, mux))
	ctx := context.Background()

	t.Run("put strips status", func(t *testing.T) {
		a := fullAttachment()
		out, err := c.PutAttachment(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if gotPut.State != "" || gotPut.Exposed != nil || gotPut.Problems != nil {
			t.Errorf("status sent: %+v", gotPut)
		}
		if gotPut.Netns != a.Netns || !reflect.DeepEqual(gotPut.PortMappings, a.PortMappings) {
			t.Errorf("sent %+v", gotPut)
		}
		if out.State != hooks.StateAvailable || len(out.Exposed) != 1 {
			t.Errorf("answer %+v", out)
		}
	})
	t.Run("put rejected", func(t *testing.T) {
		_, err := c.PutAttachment(ctx, hooks.Attachment{Name: "bad"})
		var se *hooks.StatusError
		if !errors.As(err, &se) || se.Code != 400 || !hooks.IsRejected(err) {
			t.Fatalf("err %v, want a 400 StatusError", err)
		}
		if want := "nsproxy: attachment c/eth0 is invalid: name: no"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	})
	t.Run("get escapes", func(t *testing.T) {
		a, err := c.Attachment(ctx, hooks.AttachmentKey{ContainerID: "c/1", IfName: "eth0"})
		if err != nil || a.ContainerID != "c/1" || a.IfName != "eth0" {
			t.Fatalf("%+v %v", a, err)
		}
	})
	t.Run("get not found", func(t *testing.T) {
		_, err := c.Attachment(ctx, hooks.AttachmentKey{ContainerID: "zz", IfName: "eth0"})
		if !hooks.IsNotFound(err) || !hooks.IsRejected(err) {
			t.Fatalf("err %v, want 404", err)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		for _, k := range []hooks.AttachmentKey{{}, {ContainerID: "..", IfName: "eth0"}, {ContainerID: "a", IfName: "."}} {
			if _, err := c.Attachment(ctx, k); err == nil {
				t.Errorf("%+v: no error", k)
			}
			if err := c.DeleteAttachment(ctx, k); err == nil {
				t.Errorf("%+v: no error", k)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		l, err := c.Attachments(ctx)
		if err != nil || len(l) != 1 {
			t.Fatalf("%+v %v", l, err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := c.DeleteAttachment(ctx, hooks.AttachmentKey{ContainerID: "a b", IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 1 || deleted[0] != "a b/eth0" {
			t.Errorf("deleted %q", deleted)
		}
	})
	t.Run("gc", func(t *testing.T) {
		removed, err := c.GC(ctx, nil)
		if err != nil || len(removed) != 1 {
			t.Fatalf("%+v %v", removed, err)
		}
		if v, ok := gotGC["valid"]; !ok || v == nil || len(v) != 0 {
			t.Errorf("sent %v, want an empty valid list", gotGC)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		err := c.Ready(ctx)
		var se *hooks.StatusError
		if !errors.As(err, &se) || se.Code != 503 || se.Message != "starting" || hooks.IsRejected(err) {
			t.Fatalf("err %#v", err)
		}
	})
}

func TestClientUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	c := hooks.NewClient(sock)
	err := c.Ready(context.Background())
	if !errors.Is(err, hooks.ErrUnreachable) || hooks.IsRejected(err) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("message %q", err)
	}
	if hooks.NewClient("").Socket() != hooks.DefaultSocket {
		t.Error("empty socket is not the default")
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	sock := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	c := hooks.NewClient(sock, hooks.WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.PutAttachment(context.Background(), hooks.Attachment{})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || hooks.IsRejected(err) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
