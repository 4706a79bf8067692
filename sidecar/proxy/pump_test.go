package proxy

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// serveStream runs a server in ns that writes data to each client, pausing
// pause after each chunk of step bytes (0: no pause).
func (v *env) serveStream(ns, addr string, data []byte, step int, pause time.Duration) {
	v.t.Helper()
	v.serveFunc(ns, addr, func(c net.Conn) {
		// Drain what the client sends, so that closing never resets.
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(drained) }()
		defer func() { c.(*net.TCPConn).CloseWrite(); <-drained }()
		for off := 0; off < len(data); off += step {
			end := min(off+step, len(data))
			if _, err := c.Write(data[off:end]); err != nil {
				return
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	})
}

// TestSlowReaderKeepsEveryByte: a client that stops reading for longer than
// the timeout while it still sends now and then must get every byte, in
// order, or lose the connection; never a corrupted stream.
func TestSlowReaderKeepsEveryByte(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	v.serveStream(b, "127.0.0.1:9400", data, len(data), 0)
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	sp := spec1(bind, BackendSpec{Servers: []ServerSpec{srv("s", "127.0.0.1:9400", b)}})
	sp.Frontends[0].ClientTimeout = time.Second
	v.e.Apply(sp)
	var c *net.TCPConn
	eventually(t, "connect", func() error {
		var err error
		c, err = v.dial("", bind.Addr.String())
		return err
	})
	defer c.Close()
	c.SetReadBuffer(64 << 10)
	got := &bytes.Buffer{}
	buf := make([]byte, 4<<20)
	n, _ := io.ReadFull(c, buf[:4<<20])
	got.Write(buf[:n])
	// Stall reading for 1.5 timeouts, trickling bytes the other way.
	stop := time.After(1500 * time.Millisecond)
trickle:
	for {
		select {
		case <-stop:
			break trickle
		case <-time.After(100 * time.Millisecond):
			c.Write([]byte{'.'})
		}
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	c.CloseWrite() // the server drains until our FIN, then finishes
	rest, _ := io.ReadAll(c)
	got.Write(rest)
	if got.Len() != len(data) || sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
		t.Fatalf("got %d of %d bytes, prefix intact: %v", got.Len(), len(data), bytes.Equal(got.Bytes(), data[:min(got.Len(), len(data))]))
	}
}

// TestOneWayStreamIsNotIdle: a server that sends a byte every 100ms to a
// silent client keeps the connection alive past a 500ms timeout.
func TestOneWayStreamIsNotIdle(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serveStream(b, "127.0.0.1:9401", bytes.Repeat([]byte{'x'}, 20), 1, 100*time.Millisecond)
	port := freePort(t)
	bind := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	sp := spec1(bind, BackendSpec{ServerTimeout: 500 * time.Millisecond,
		Servers: []ServerSpec{srv("s", "127.0.0.1:9401", b)}})
	sp.Frontends[0].ClientTimeout = 500 * time.Millisecond
	v.e.Apply(sp)
	var c *net.TCPConn
	eventually(t, "connect", func() error {
		var err error
		c, err = v.dial("", bind.Addr.String())
		return err
	})
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, _ := io.ReadAll(c)
	if len(all) != 20 {
		t.Fatalf("one-way stream cut after %d of 20 bytes (2s of traffic, 500ms timeout)", len(all))
	}
}

// TestMaxConnSharedByBinds: maxconn 1 over two binds: an idle bind must
// not hold the only slot while the other bind has a client waiting.
func TestMaxConnSharedByBinds(t *testing.T) {
	b := testns.New(t, "B")
	v := newEnv(t, b)
	v.serve(b, "127.0.0.1:9402", "s")
	p1, p2 := freePort(t), freePort(t)
	b1 := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p1)}
	b2 := BindSpec{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p2)}
	sp := Spec{Frontends: []FrontendSpec{{Name: "f", Binds: []BindSpec{b1, b2}, Backend: "b", MaxConn: 1}},
		Backends: []BackendSpec{{Name: "b", Servers: []ServerSpec{srv("s", "127.0.0.1:9402", b)}}}}
	v.e.Apply(sp)
	for i := 0; i < 3; i++ {
		for _, bind := range []BindSpec{b1, b2} {
			expectTag(v, "", bind.Addr.String(), "s")
		}
	}
}
