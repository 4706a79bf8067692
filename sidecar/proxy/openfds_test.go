package proxy

import (
	"sync"
	"syscall"
	"testing"
)

// TestOpenFDsIgnoresFDsClosedWhileCounting: pipes closed between the
// listing of /proc/self/fd and the readlink of an entry are not open
// descriptors. On 2eb3ece openFDs counted each of them (readlink fails, the
// empty link is not "pipe:"), and the garbage collector closing the
// runtime's spliced pipe pool during a test's cleanup made
// TestSockPoolFewConnectionsHoldFewSockets report 155 open fds where 9 were
// (CI of 2026-12-03).
func TestOpenFDsIgnoresFDsClosedWhileCounting(t *testing.T) {
	base := openFDs()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var p [2]int
		for {
			select {
			case <-stop:
				return
			default:
			}
			var fds []int
			for range 100 {
				if syscall.Pipe2(p[:], syscall.O_CLOEXEC) != nil {
					break
				}
				fds = append(fds, p[0], p[1])
			}
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
	}()
	most := 0
	for range 300 {
		most = max(most, openFDs())
	}
	close(stop)
	wg.Wait()
	if most > base+2 {
		t.Fatalf("openFDs counted %d open descriptors where %d were open and only pipes came and went", most, base)
	}
}
