package proxyproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	pp "github.com/pires/go-proxyproto"
)

const (
	v1SigLen   = 5  // "PROXY"
	v2SigLen   = 12 // \r\n\r\n\0\r\nQUIT\n
	v2FixedLen = 16 // signature, version/command, family, length
)

var (
	sigV1 = []byte("PROXY")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// ReadHeader reads exactly one PROXY v1 or v2 header from c (a header is
// required) and leaves every byte after it unread in the socket, so c can be
// handed on as is, splice included. c must be fresh from Accept: nothing
// read from it yet, and no wrapper buffering reads in front of the socket.
//
// It sets c's read deadline to now+Timeout and clears it (to no deadline)
// before returning, whatever the outcome; re-apply your own afterwards.
//
// Errors wrap one of the package's sentinels (see Reason), except I/O errors
// such as a reset connection. The returned Header is non-nil only on success
// and with ErrBadNamespace or ErrMultipleNamespaces: then the whole header was
// consumed and the Header says what was refused. After any other error the
// position in the stream is unspecified and the connection should be closed.
func ReadHeader(c net.Conn, opt ReadOptions) (*Header, error) {
	if err := c.SetReadDeadline(time.Now().Add(opt.timeout())); err != nil {
		return nil, fmt.Errorf("proxyproto: setting read deadline: %w", err)
	}
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()

	raw, err := readFrame(c, opt.maxSize())
	if err != nil {
		return nil, err
	}
	return parse(raw)
}

// readFrame returns the exact bytes of one header taken from c. It tries the
// peek fast path first and falls back to byte-wise reading, which never
// reads beyond the header either.
func readFrame(c net.Conn, maxSize int) ([]byte, error) {
	var buf [MaxV1Size]byte
	n, ok, err := peek(c, buf[:])
	if err != nil {
		return nil, readError(err, true)
	}
	if ok {
		raw, done, err := framePeeked(c, buf[:n], maxSize)
		if done {
			return raw, err
		}
	}
	return frameStream(c, maxSize)
}

// framePeeked frames a header from the bytes p seen with MSG_PEEK. done is
// false when p holds a plausible but incomplete header: nothing has been
// consumed then, and the caller continues with frameStream.
func framePeeked(r io.Reader, p []byte, maxSize int) (raw []byte, done bool, err error) {
	if len(p) == 0 {
		return nil, true, readError(io.EOF, true)
	}
	version, complete, err := matchSignature(p)
	if err != nil || !complete {
		return nil, err != nil, err
	}
	var size int
	switch version {
	case 2:
		if len(p) < v2FixedLen {
			return nil, false, nil
		}
		if size, err = v2Size(p[:v2FixedLen], maxSize); err != nil {
			return nil, true, err
		}
	default:
		limit := min(MaxV1Size, maxSize)
		i := bytes.IndexByte(p[:min(len(p), limit)], '\n')
		switch {
		case i >= 0:
			size = i + 1
		case len(p) >= limit:
			return nil, true, v1TooLong(limit)
		default:
			return nil, false, nil
		}
	}
	raw = make([]byte, size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, true, readError(err, false)
	}
	return raw, true, nil
}

// frameStream frames a header by reading r one byte at a time up to the
// point where its length is known (the end of the v2 fixed part, or the LF
// of a v1 line), then exactly the rest. A peer that does not speak PROXY is
// refused at its first wrong byte.
func frameStream(r io.Reader, maxSize int) ([]byte, error) {
	buf := make([]byte, 0, 2*v2FixedLen)
	one := make([]byte, 1) // one allocation for all single-byte reads
	var version int
	for {
		b, err := readByte(r, one)
		if err != nil {
			return nil, readError(err, true)
		}
		buf = append(buf, b)
		var complete bool
		if version, complete, err = matchSignature(buf); err != nil {
			return nil, err
		}
		if complete {
			break
		}
	}

	if version == 2 {
		buf = buf[:v2FixedLen]
		if _, err := io.ReadFull(r, buf[v2SigLen:]); err != nil {
			return nil, readError(err, false)
		}
		size, err := v2Size(buf, maxSize)
		if err != nil {
			return nil, err
		}
		raw := make([]byte, size)
		copy(raw, buf)
		if _, err := io.ReadFull(r, raw[v2FixedLen:]); err != nil {
			return nil, readError(err, false)
		}
		return raw, nil
	}

	limit := min(MaxV1Size, maxSize)
	for {
		if len(buf) >= limit {
			return nil, v1TooLong(limit)
		}
		b, err := readByte(r, one)
		if err != nil {
			return nil, readError(err, false)
		}
		buf = append(buf, b)
		if b == '\n' {
			return buf, nil
		}
	}
}

func readByte(r io.Reader, one []byte) (byte, error) {
	_, err := io.ReadFull(r, one)
	return one[0], err
}

// matchSignature checks the first bytes of a connection against the v1 and
// v2 signatures. It fails with ErrNoHeader as soon as p cannot be the start
// of either; complete reports that p holds a whole signature.
func matchSignature(p []byte) (version int, complete bool, err error) {
	if len(p) == 0 {
		return 0, false, nil
	}
	sig := sigV1
	version = 1
	if p[0] == sigV2[0] {
		sig, version = sigV2, 2
	}
	n := min(len(p), len(sig))
	if !bytes.Equal(p[:n], sig[:n]) {
		return 0, false, fmt.Errorf("%w: first bytes %q", ErrNoHeader, p[:n])
	}
	return version, n == len(sig), nil
}

// v2Size returns the total size announced by a v2 fixed part, refusing it
// before the body is read if it is too large.
func v2Size(fixed []byte, maxSize int) (int, error) {
	if v := fixed[12] >> 4; v != 2 {
		return 0, malformed("v2 signature with version %d", v)
	}
	size := v2FixedLen + int(binary.BigEndian.Uint16(fixed[14:16]))
	if limit := min(maxSize, v2FixedLen+int(pp.MaxV2HeaderSize)); size > limit {
		return 0, fmt.Errorf("%w: v2 header of %d bytes, limit %d", ErrTooLarge, size, limit)
	}
	return size, nil
}

func v1TooLong(limit int) error {
	if limit < MaxV1Size {
		return fmt.Errorf("%w: no LF in the first %d bytes of a v1 line", ErrTooLarge, limit)
	}
	return malformed("no LF in the first %d bytes of a v1 line", limit)
}
