package proxyproto

import (
	"bytes"
	"net"
	"testing"
)

// benchReadOverTCP writes hdr and reads it back with ReadHeader on one
// loopback connection per iteration pair, the way the engine meets it
// (minus accept): a write, then a peek and an exact read.
func benchReadOverTCP(b *testing.B, hdr []byte) {
	server, client := tcpPair(b)
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Write(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadHeader(server, ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchReadOverPipe is the byte-wise path, for comparison.
func benchReadOverPipe(b *testing.B, hdr []byte) {
	server, client := net.Pipe()
	b.Cleanup(func() { server.Close(); client.Close() })
	go func() {
		for {
			if _, err := client.Write(hdr); err != nil {
				return
			}
		}
	}()
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadHeader(server, ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchParse is the CPU cost alone: framing from memory, then parsing.
func benchParse(b *testing.B, hdr []byte) {
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	r := bytes.NewReader(hdr)
	for b.Loop() {
		r.Reset(hdr)
		raw, err := frameStream(r, DefaultMaxSize)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadHeaderV2(b *testing.B) {
	hdr := AppendV2(nil, ap("10.1.2.3:40000"), ap("10.9.8.7:443"), "tenant-a:frontend-1")
	b.Run("tcp", func(b *testing.B) { benchReadOverTCP(b, hdr) })
	b.Run("pipe", func(b *testing.B) { benchReadOverPipe(b, hdr) })
	b.Run("parse", func(b *testing.B) { benchParse(b, hdr) })
}

func BenchmarkReadHeaderV1(b *testing.B) {
	hdr := AppendV1(nil, ap("[2001:db8::1]:40000"), ap("[2001:db8::2]:443"))
	b.Run("tcp", func(b *testing.B) { benchReadOverTCP(b, hdr) })
	b.Run("pipe", func(b *testing.B) { benchReadOverPipe(b, hdr) })
	b.Run("parse", func(b *testing.B) { benchParse(b, hdr) })
}

func BenchmarkAppendV2(b *testing.B) {
	src, dst := ap("10.1.2.3:40000"), ap("10.9.8.7:443")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendV2(buf[:0], src, dst, "tenant-a:frontend-1")
	}
}

func BenchmarkAppendV1(b *testing.B) {
	src, dst := ap("[2001:db8::1]:40000"), ap("[2001:db8::2]:443")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendV1(buf[:0], src, dst)
	}
}
