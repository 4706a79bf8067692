package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"

	pp "github.com/pires/go-proxyproto"
)

const (
	cmdLocal = 0x0
	cmdProxy = 0x1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parse decodes raw, which holds exactly one framed header, and applies the
// NETNS policy. On ErrBadNamespace and ErrMultipleNamespaces it returns the
// Header too.
func parse(raw []byte) (*Header, error) {
	isV2 := raw[0] == sigV2[0]
	in := raw
	if isV2 && raw[12]&0x0F == cmdProxy && raw[13] == TransportUnspec {
		// go-proxyproto refuses PROXY over UNSPEC; the spec lets a receiver
		// accept it using the real endpoints, and HAProxy does. Show the
		// library the LOCAL command it is equivalent to, on a copy: TLV
		// values will point into raw.
		in = bytes.Clone(raw)
		in[12] = 0x20 | cmdLocal
	}
	ph, err := libraryRead(in)
	if err != nil {
		return nil, malformed("%w", err)
	}

	h := &Header{Version: int(ph.Version), Size: len(raw)}
	if !isV2 {
		h.Transport = byte(ph.TransportProtocol)
		h.Local = ph.Command.IsLocal()
	} else {
		h.Transport = raw[13]
		h.Local = raw[12]&0x0F == cmdLocal ||
			(h.Transport != TransportTCP4 && h.Transport != TransportTCP6)
	}
	if !h.Local {
		src, dst, ok := ph.TCPAddrs()
		if !ok {
			return nil, malformed("no TCP addresses in a PROXY header")
		}
		h.Source, h.Destination = src.AddrPort(), dst.AddrPort()
		if !h.Source.IsValid() || !h.Destination.IsValid() {
			return nil, malformed("invalid addresses %v %v", src, dst)
		}
	}
	if !isV2 {
		return h, nil
	}

	if h.TLVs, err = splitTLVs(raw); err != nil {
		return nil, err
	}
	if err := verifyCRC32C(raw, h.TLVs); err != nil {
		return nil, err
	}
	if err := applyNamespace(h); err != nil {
		return h, err
	}
	return h, nil
}

// libraryRead runs go-proxyproto's parser over raw alone. Its reader holds
// only raw, so the library cannot consume anything else; it must consume all
// of raw, or the two framings disagree.
func libraryRead(raw []byte) (*pp.Header, error) {
	src := bytes.NewReader(raw)
	// The library refuses a v1 line that is not wholly buffered after one
	// read, so the buffer must hold the longest line.
	br := bufio.NewReaderSize(src, max(len(raw), MaxV1Size+1))
	ph, err := pp.Read(br)
	if err != nil {
		return nil, err
	}
	if left := br.Buffered() + src.Len(); left != 0 {
		return nil, errors.New("parser stopped before the end of the header")
	}
	return ph, nil
}

// addressBlockLen is the size of the v2 address block for a family byte.
func addressBlockLen(transport byte) int {
	switch transport >> 4 {
	case 0x1:
		return 12
	case 0x2:
		return 36
	case 0x3:
		return 216
	}
	return 0
}

// splitTLVs returns the TLVs after the address block of a v2 header. Values
// are capacity-limited subslices of raw. A LOCAL header whose length does
// not even cover its family's address block has no TLVs (go-proxyproto
// skips such a block whole, and so do we).
func splitTLVs(raw []byte) ([]TLV, error) {
	start := v2FixedLen + addressBlockLen(raw[13])
	if start >= len(raw) {
		return nil, nil
	}
	rest := raw[start:]
	var tlvs []TLV
	for len(rest) > 0 {
		if len(rest) < 3 {
			return nil, malformed("truncated TLV header at offset %d", len(raw)-len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest[1:3]))
		if 3+n > len(rest) {
			return nil, malformed("TLV 0x%02x of %d bytes overruns the header", rest[0], n)
		}
		tlvs = append(tlvs, TLV{Type: rest[0], Value: rest[3 : 3+n : 3+n]})
		rest = rest[3+n:]
	}
	return tlvs, nil
}

// verifyCRC32C checks every CRC32C TLV against the header (spec §2.2.3):
// the checksum of the whole header with the checksum field zeroed.
func verifyCRC32C(raw []byte, tlvs []TLV) error {
	off := v2FixedLen + addressBlockLen(raw[13]) // where the current TLV starts
	for _, t := range tlvs {
		valueOff := off + 3
		off = valueOff + len(t.Value)
		if t.Type != TypeCRC32C {
			continue
		}
		if len(t.Value) != 4 {
			return malformed("CRC32C TLV of %d bytes", len(t.Value))
		}
		want := binary.BigEndian.Uint32(t.Value)
		zeroed := bytes.Clone(raw) // t.Value aliases raw
		clear(zeroed[valueOff : valueOff+4])
		if got := crc32.Checksum(zeroed, castagnoli); got != want {
			return malformed("CRC32C mismatch: header says %08x, computed %08x", want, got)
		}
	}
	return nil
}
