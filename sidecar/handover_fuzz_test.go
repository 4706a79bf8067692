package sidecar

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func framed(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func TestDecodeOffer(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
		n    int
	}{
		{"empty offer", framed(`{"pid":1,"listeners":[]}`), "", 0},
		{"frontend in a namespace", framed(`{"pid":1,"listeners":[{"role":"frontend","frontend":"f","bind":{"Addr":"127.0.0.1:80","Namespace":"blue","AcceptProxy":true},"netns":{"dev":4,"ino":4026531840,"cookie":1}}]}`), "", 1},
		{"adopted reservation", framed(`{"pid":1,"listeners":[{"role":"frontend","bind":{"Addr":"0.0.0.0:8080","AdoptFrom":"abc"}}]}`), "", 1},
		{"control and metrics", framed(`{"pid":1,"listeners":[{"role":"control"},{"role":"metrics"}]}`), "", 2},
		{"frontend without bind", framed(`{"pid":1,"listeners":[{"role":"frontend","frontend":"f"}]}`), "has no bind address", 0},
		{"frontend with bad address", framed(`{"pid":1,"listeners":[{"role":"frontend","bind":{"Addr":"nope"}}]}`), "bad offer", 0},
		{"unknown role", framed(`{"pid":1,"listeners":[{"role":"udp"}]}`), "unknown role", 0},
		{"not JSON", framed(`HTTP/1.1 404`), "bad offer", 0},
		{"too large", binary.BigEndian.AppendUint32(nil, maxOffer+1), "too large", 0},
		{"short header", []byte{0, 0}, "EOF", 0},
		{"short body", append(binary.BigEndian.AppendUint32(nil, 10), "{}"...), "EOF", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := decodeOffer(bytes.NewReader(tc.in))
			if tc.err == "" {
				if err != nil || len(o.Listeners) != tc.n {
					t.Fatalf("got %+v, %v", o, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func FuzzDecodeOffer(f *testing.F) {
	f.Add(framed(`{"pid":1,"listeners":[{"role":"frontend","bind":{"Addr":"127.0.0.1:80"}}]}`))
	f.Add(framed(`{"pid":1,"listeners":[{"role":"control"}]}`))
	f.Add(framed(`{"listeners":[{"role":"frontend"}]}`))
	f.Add(binary.BigEndian.AppendUint32(nil, 0xffffffff))
	f.Add([]byte("HTTP/1.1 200 OK\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeOffer(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range o.Listeners {
			if l.Role == RoleFrontend && (l.Bind == nil || !l.Bind.Addr.IsValid()) {
				t.Fatalf("accepted a frontend without a bind: %+v", l)
			}
		}
	})
}
