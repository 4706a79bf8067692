package proxyproto

import (
	"fmt"
	"io"
)

// Parser reads one PROXY v1 or v2 header from bytes that arrive in pieces,
// for a caller that cannot block on the connection (an event loop): it
// feeds what each read returned, and the Parser takes only the header's
// bytes. It decides exactly as ReadHeader does, on the same bytes, however
// they are split: the same Header, the same errors (the same Reason), a
// refusal at the same byte.
//
// The header timeout is the caller's: when it expires, it refuses the
// connection with Timeout's error.
type Parser struct {
	maxSize int
	buf     []byte // the header's bytes so far
	version int    // 0 until the signature is complete
	size    int    // the header's total size once known, else 0
	done    bool
	small   [MaxV1Size]byte // buf's first home: no allocation for v1 or a small v2
}

// NewParser returns a Parser for one header; opt.MaxSize applies as in
// ReadHeader, opt.Timeout is ignored (the caller times the header).
func NewParser(opt ReadOptions) *Parser {
	p := &Parser{maxSize: opt.maxSize()}
	p.buf = p.small[:0]
	return p
}

// Feed takes the next bytes of the stream, b. It returns how many of them
// belong to the header (b[n:] is payload, not to be lost) and whether the
// Parser is done: then h and err are what ReadHeader would return (h
// non-nil on success and with ErrBadNamespace or ErrMultipleNamespaces). A
// Parser that is done takes nothing more. Feed does not keep b.
func (p *Parser) Feed(b []byte) (n int, done bool, h *Header, err error) {
	if p.done {
		return 0, true, nil, fmt.Errorf("%w: Feed after the header was done", ErrMalformed)
	}
	for n < len(b) && p.size == 0 {
		// Byte by byte until the header's length is known: the end of the
		// v2 fixed part, or the LF of a v1 line.
		p.buf = append(p.buf, b[n])
		n++
		if p.version == 0 {
			version, complete, err := matchSignature(p.buf)
			if err != nil {
				return n, true, nil, p.fail(err)
			}
			if !complete {
				continue
			}
			p.version = version
			if version == 1 {
				if err := p.v1Limit(); err != nil {
					return n, true, nil, p.fail(err)
				}
			}
			continue
		}
		if p.version == 2 {
			if len(p.buf) == v2FixedLen {
				size, err := v2Size(p.buf, p.maxSize)
				if err != nil {
					return n, true, nil, p.fail(err)
				}
				p.size = size
				if size > cap(p.buf) {
					p.buf = append(make([]byte, 0, size), p.buf...)
				}
			}
			continue
		}
		if b[n-1] == '\n' {
			p.size = len(p.buf)
			continue
		}
		if err := p.v1Limit(); err != nil {
			return n, true, nil, p.fail(err)
		}
	}
	if p.size == 0 {
		return n, false, nil, nil
	}
	k := min(p.size-len(p.buf), len(b)-n)
	p.buf = append(p.buf, b[n:n+k]...)
	n += k
	if len(p.buf) < p.size {
		return n, false, nil, nil
	}
	p.done = true
	h, err = parse(p.buf)
	return n, true, h, err
}

// v1Limit refuses a v1 line that has reached its limit without a LF, as
// ReadHeader does before it reads another byte.
func (p *Parser) v1Limit() error {
	if limit := min(MaxV1Size, p.maxSize); len(p.buf) >= limit {
		return v1TooLong(limit)
	}
	return nil
}

func (p *Parser) fail(err error) error {
	p.done = true
	return err
}

// EOF is the error for the peer ending the stream before the header was
// done: what ReadHeader returns then (ErrNoHeader inside the signature,
// ErrMalformed after it).
func (p *Parser) EOF() error {
	return readError(io.EOF, p.version == 0)
}

// Timeout is the error for a header not done within the caller's timeout:
// it wraps ErrTimeout, as ReadHeader's does.
func (p *Parser) Timeout() error {
	return fmt.Errorf("%w: no complete header after %d bytes", ErrTimeout, len(p.buf))
}
