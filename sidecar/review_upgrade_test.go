package sidecar

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReviewReloadRenameRefuses: README "Reloads keep every listener whose
// bind line is unchanged, with its connections". A SIGHUP reload whose file
// only renames a frontend (same bind line, same backend) closes the
// listening socket and binds it again: connections are refused meanwhile.
func TestReviewReloadRenameRefuses(t *testing.T) {
	be := echoServer(t, "backend")
	cfg := func(name string) string {
		return fmt.Sprintf("frontend %s\n    bind 127.0.0.1:22140\n    default_backend app\nbackend app\n    server s1 127.0.0.1:%d\n", name, be)
	}
	td := startTestDaemon(t, cfg("web"), "")
	addr := "127.0.0.1:22140"
	waitFor(t, "daemon serves", func() error { _, err := askTag(addr); return err })
	var refused, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
				}
				continue
			}
			ok.Add(1)
			c.Close()
		}
	}()
	for i := range 10 {
		name := "web"
		if i%2 == 0 {
			name = "www"
		}
		mustWrite(t, td.d.opt.ConfigFiles[0], cfg(name))
		if err := td.d.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if refused.Load() > 0 {
		t.Errorf("10 reloads that only renamed the frontend: %d connections refused (%d accepted)", refused.Load(), ok.Load())
	}
}
