package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitGoroutines waits for the goroutine count to drop back to want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > want {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after\n%s", want, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestServe(t *testing.T) {
	before := runtime.NumGoroutine()
	m := New(Source{Snapshot: fakeSnapshot, RegistrySize: func() int { return 3 }})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	base := "http://" + ln.Addr().String()

	tests := []struct {
		name, path string
		status     int
		want       []string
	}{
		{"metrics", Path, http.StatusOK, []string{
			"\nnsproxy_connections_current 5\n",
			"\nnsproxy_registry_namespaces 3\n",
			`nsproxy_server_up{backend="app",netns="blue",server="s2"} 0`,
			"\ngo_goroutines ",
		}},
		{"root", "/", http.StatusNotFound, nil},
		{"below metrics", "/metrics/x", http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("body lacks %q", w)
				}
			}
		})
	}

	// The keep-alive connection from above is still open: Shutdown must
	// close it, or the transport's and the server's connection goroutines
	// outlive Serve.
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(shutdownTimeout + time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
	waitGoroutines(t, before)
}

// A scrape in flight when ctx ends finishes; Serve waits for it.
func TestServeDrainsScrapeInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	inScrape, release := make(chan struct{}), make(chan struct{})
	m := New(Source{RegistrySize: func() int {
		close(inScrape)
		<-release
		return 1
	}})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()

	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	got := make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + Path)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-inScrape
	cancel()
	select {
	case <-served:
		t.Fatal("Serve returned with a scrape in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if body := <-got; !strings.Contains(body, "\nnsproxy_registry_namespaces 1\n") {
		t.Errorf("scrape in flight got:\n%s", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	waitGoroutines(t, before)
}

func TestListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	tests := []struct {
		name, addr string
		sentinel   error
	}{
		{"empty", "", ErrNoAddress},
		{"port in use", busy.Addr().String(), nil},
		{"not an address", "127.0.0.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen(tt.addr)
			if err == nil {
				ln.Close()
				t.Fatalf("Listen(%q) succeeded", tt.addr)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Fatalf("err %v, want %v", err, tt.sentinel)
			}
		})
	}
}

// A listener that fails makes Serve return its error at once, without ctx.
func TestServeListenerError(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- New(Source{}).Serve(context.Background(), ln) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve on a closed listener returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve on a closed listener did not return")
	}
}
