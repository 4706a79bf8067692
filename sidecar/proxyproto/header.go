package proxyproto

import (
	"net/netip"
	"time"
)

const (
	// DefaultReadTimeout is used when ReadOptions.Timeout is 0. The spec asks
	// receivers to wait at least 3 seconds, to cover one TCP retransmit.
	DefaultReadTimeout = 5 * time.Second
	// DefaultMaxSize is used when ReadOptions.MaxSize is 0.
	DefaultMaxSize = 4096
	// MinMaxSize is the smallest MaxSize honoured: the size of a v2 header
	// without addresses. Smaller positive values are raised to it.
	MinMaxSize = v2FixedLen
	// MaxV1Size is the longest v1 line the spec allows, CRLF included.
	MaxV1Size = 107

	// TypeCRC32C is the PP2_TYPE_CRC32C TLV type.
	TypeCRC32C byte = 0x03
	// TypeNoop is the PP2_TYPE_NOOP TLV type.
	TypeNoop byte = 0x04
	// TypeNetns is the PP2_TYPE_NETNS TLV type: the value is a namespace name.
	TypeNetns byte = 0x30
)

// Values of Header.Transport: the v2 address family (high nibble) and
// transport protocol (low nibble) byte.
const (
	TransportUnspec     byte = 0x00
	TransportTCP4       byte = 0x11
	TransportUDP4       byte = 0x12
	TransportTCP6       byte = 0x21
	TransportUDP6       byte = 0x22
	TransportUnixStream byte = 0x31
	TransportUnixDgram  byte = 0x32
)

// Header is what a PROXY header told us.
type Header struct {
	Version int // 1 or 2
	// Local reports that the header carries no usable client addresses: a v2
	// LOCAL command, a v1 UNKNOWN line, or a v2 PROXY command whose family is
	// not TCP over IPv4/IPv6 (UNSPEC, UDP, UNIX). The caller then uses the
	// connection's own endpoints.
	Local bool
	// Source and Destination are the client and the address it connected to.
	// They are valid exactly when Local is false. An IPv4 client in a v2 TCP6
	// header or a v1 TCP6 line stays IPv4-mapped IPv6 (::ffff:a.b.c.d), as
	// sent; call Unmap if an IPv4 address is wanted.
	Source, Destination netip.AddrPort
	// Namespace is the value of the single NETNS TLV; "" when there is none.
	Namespace string
	// HasNamespace reports that a NETNS TLV was present, even one that was
	// then refused with ErrBadNamespace or ErrMultipleNamespaces.
	HasNamespace bool
	// RawNamespace is the raw value of the (first) NETNS TLV, for logging a
	// refused value. It shares memory with TLVs.
	RawNamespace []byte
	// TLVs are all v2 TLVs, in wire order, NOOP and NETNS included. Values
	// share one buffer; copy them to keep them beyond the Header.
	TLVs []TLV
	// Transport is the v2 family/protocol byte as received (see the
	// Transport constants); for v1: TransportTCP4, TransportTCP6, or
	// TransportUnspec for UNKNOWN.
	Transport byte
	// Size is the number of bytes the header took on the wire: exactly what
	// ReadHeader consumed from the connection.
	Size int
}

// TLV is one v2 type-length-value record.
type TLV struct {
	Type  byte
	Value []byte
}

// ReadOptions tunes ReadHeader. The zero value is ready to use.
type ReadOptions struct {
	// Timeout bounds the time for the whole header to arrive; 0 means
	// DefaultReadTimeout.
	Timeout time.Duration
	// MaxSize is the largest header accepted, in bytes; 0 means
	// DefaultMaxSize and values below MinMaxSize are raised to it. A v2 header
	// announcing more is refused with ErrTooLarge before its body is read; a
	// v1 line is limited to min(MaxSize, MaxV1Size). go-proxyproto's
	// MaxV2HeaderSize also caps v2 headers at 16 plus its value (4096 by
	// default).
	MaxSize int
}

func (o ReadOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultReadTimeout
	}
	return o.Timeout
}

func (o ReadOptions) maxSize() int {
	switch {
	case o.MaxSize <= 0:
		return DefaultMaxSize
	case o.MaxSize < MinMaxSize:
		return MinMaxSize
	}
	return o.MaxSize
}
