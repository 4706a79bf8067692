package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cmdEcho echoes every byte back, on every connection, until killed.
func cmdEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	addr := fs.String("l", "", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// cmdIdle opens n connections, sends one byte on each and waits for it to
// come back, writes "opened=X failed=Y" to the ready file, and holds the
// connections until SIGTERM or SIGINT.
func cmdIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to")
	n := fs.Int("n", 1000, "connections")
	par := fs.Int("parallel", 32, "connections opened at once")
	timeout := fs.Duration("timeout", 5*time.Second, "per-connection timeout")
	ready := fs.String("ready", "", "file to write the result to")
	maxFail := fs.Int("max-fail", 50, "stop opening after this many failures (a proxy out of fds fails slowly)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var (
		mu       sync.Mutex
		conns    []net.Conn
		failed   atomic.Int64
		firstErr atomic.Value
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := []byte{'i'}
			for next.Add(1) <= int64(*n) && failed.Load() < int64(*maxFail) {
				c, err := net.DialTimeout("tcp", *addr, *timeout)
				if err == nil {
					c.SetDeadline(time.Now().Add(*timeout))
					if _, err = c.Write(one); err == nil {
						_, err = io.ReadFull(c, one)
					}
					c.SetDeadline(time.Time{})
					if err != nil {
						c.Close()
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	msg := fmt.Sprintf("opened=%d failed=%d seconds=%.2f", len(conns), failed.Load(), time.Since(start).Seconds())
	if failed.Load() >= int64(*maxFail) {
		msg += fmt.Sprintf(" gave_up_after=%d_failures", *maxFail)
	}
	if e, ok := firstErr.Load().(string); ok {
		msg += " first_error=" + strings.ReplaceAll(e, " ", "_")
	}
	if *ready != "" {
		if err := os.WriteFile(*ready+".tmp", []byte(msg+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*ready+".tmp", *ready); err != nil {
			return err
		}
	} else {
		fmt.Println(msg)
	}
	<-stop
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// cmdProbe retries one request through addr until it works or the timeout
// passes: an HTTP GET (-http PATH), a 1-byte echo (-echo) or a bare connect.
func cmdProbe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	addr := fs.String("addr", "", "address")
	path := fs.String("http", "", "GET this path and expect 200")
	echo := fs.Bool("echo", false, "expect a 1-byte echo")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var err error
	for {
		err = probeOnce(*addr, *path, *echo)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func probeOnce(addr, path string, echo bool) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	switch {
	case path != "":
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: bench\r\n\r\n", path); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("no HTTP answer: %w", err)
		}
		if !strings.Contains(line, " 200 ") {
			return fmt.Errorf("HTTP answer %q", strings.TrimSpace(line))
		}
	case echo:
		one := []byte{'p'}
		if _, err := c.Write(one); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, one); err != nil {
			return fmt.Errorf("no echo: %w", err)
		}
	}
	return nil
}
