package hooks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDialRetriesAFullAcceptQueue: a unix connect to a listener whose
// queue is full fails at once with EAGAIN; the client retries until the
// daemon accepts instead of reporting it unreachable.
func TestDialRetriesAFullAcceptQueue(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), sock)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Fill the queue until a connect fails with EAGAIN.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for {
		c, err := net.Dial("unix", sock)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if held = append(held, c); len(held) > 64 {
			t.Skip("the accept queue never filled")
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ready"}`))
	})}
	time.AfterFunc(200*time.Millisecond, func() { srv.Serve(ln) })
	defer srv.Close()
	start := time.Now()
	if err := NewClient(sock).Ready(context.Background()); err != nil {
		t.Fatalf("Ready with a full accept queue for 200 ms: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %v: the queue was not full", d)
	}
}
