package hooks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The client speaks HTTP/1.0 to the daemon's net/http server by hand, one
// request per connection, instead of linking net/http: the CNI plugin and
// the OCI hook are started once per container, and net/http's package tree
// (crypto/tls, x509, http2) costs every start more CPU than the whole
// request does (see ARCHITECTURE.md, "A container's path"). HTTP/1.0 keeps
// the answer simple: the server closes the connection after it and never
// chunks it, so the body is either Content-Length bytes or everything up to
// the close.

// Bounds of an answer's head: the daemon's are a few hundred bytes.
const (
	maxStatusLine = 1 << 10
	maxHeaderLine = 8 << 10
	maxHeaders    = 64
)

// ErrBadAnswer matches (errors.Is) every error of readAnswer about what
// the peer sent (not about the connection).
var ErrBadAnswer = errors.New("nsproxy: malformed HTTP answer")

// requestBytes is an HTTP/1.0 request for path with an optional JSON body.
// path must be the daemon's: "/" and printable ASCII without spaces (the
// callers escape every segment they add).
func requestBytes(method, path string, body []byte) ([]byte, error) {
	if method == "" || strings.ContainsFunc(method, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return nil, fmt.Errorf("bad method %q", method)
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, fmt.Errorf("bad path %q: it must start with / and hold printable ASCII only", path)
	}
	var b bytes.Buffer
	b.Grow(128 + len(body))
	b.WriteString(method)
	b.WriteByte(' ')
	b.WriteString(path)
	b.WriteString(" HTTP/1.0\r\nHost: nsproxy\r\nAccept: application/json\r\n")
	if body != nil {
		b.WriteString("Content-Type: application/json\r\nContent-Length: ")
		b.WriteString(strconv.Itoa(len(body)))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes(), nil
}

// answer is a parsed HTTP answer.
type answer struct {
	code int
	body []byte
}

// readAnswer reads one HTTP/1.x answer from r: the status line, the
// header (only Content-Length matters; Transfer-Encoding is refused, an
// HTTP/1.0 request is never answered chunked) and a body of at most limit
// bytes: Content-Length bytes, or everything up to EOF without it. A body
// over the limit is an error naming it, as is a body cut short.
func readAnswer(r *bufio.Reader, limit int64) (answer, error) {
	line, err := readLine(r, maxStatusLine)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return answer{}, fmt.Errorf("%w: connection closed before an answer", ErrBadAnswer)
		}
		return answer{}, err
	}
	code, err := parseStatusLine(line)
	if err != nil {
		return answer{}, err
	}
	length := int64(-1)
	for n := 0; ; n++ {
		line, err := readLine(r, maxHeaderLine)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return answer{}, fmt.Errorf("%w: connection closed in the header", ErrBadAnswer)
			}
			return answer{}, err
		}
		if line == "" {
			break
		}
		if n == maxHeaders {
			return answer{}, fmt.Errorf("%w: more than %d header fields", ErrBadAnswer, maxHeaders)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return answer{}, fmt.Errorf("%w: header line %q", ErrBadAnswer, line)
		}
		value = strings.Trim(value, " \t")
		switch {
		case strings.EqualFold(name, "Content-Length"):
			v, err := parseLength(value)
			if err != nil {
				return answer{}, err
			}
			if length >= 0 && v != length {
				return answer{}, fmt.Errorf("%w: two different Content-Length values", ErrBadAnswer)
			}
			length = v
		case strings.EqualFold(name, "Transfer-Encoding"):
			return answer{}, fmt.Errorf("%w: Transfer-Encoding %q on an HTTP/1.0 answer", ErrBadAnswer, value)
		}
	}
	if code == 204 || code == 304 {
		return answer{code: code}, nil
	}
	if length > limit {
		return answer{}, fmt.Errorf("%w: the answer's body is %d bytes, more than the %d this request reads", ErrBadAnswer, length, limit)
	}
	var body []byte
	if length >= 0 {
		body = make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return answer{}, fmt.Errorf("%w: body cut short (Content-Length %d)", ErrBadAnswer, length)
			}
			return answer{}, err
		}
	} else {
		body, err = io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return answer{}, err
		}
		if int64(len(body)) > limit {
			return answer{}, fmt.Errorf("%w: the answer's body is more than the %d bytes this request reads", ErrBadAnswer, limit)
		}
	}
	return answer{code: code, body: body}, nil
}

// readLine reads one CRLF- (or LF-) terminated line of at most max bytes,
// without its end.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(b)+len(chunk) > max+2 {
			return "", fmt.Errorf("%w: a line longer than %d bytes", ErrBadAnswer, max)
		}
		b = append(b, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return "", fmt.Errorf("%w: connection closed in a line", ErrBadAnswer)
		}
		return "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
	if bytes.ContainsAny(b, "\r\x00") {
		return "", fmt.Errorf("%w: a control character in line %q", ErrBadAnswer, b)
	}
	return string(b), nil
}

// parseStatusLine returns the code of "HTTP/1.x CODE[ REASON]".
func parseStatusLine(line string) (int, error) {
	rest, ok := strings.CutPrefix(line, "HTTP/1.")
	if !ok || len(rest) < 5 || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ' {
		return 0, fmt.Errorf("%w: status line %q", ErrBadAnswer, line)
	}
	digits := rest[2:5]
	if len(rest) > 5 && rest[5] != ' ' {
		return 0, fmt.Errorf("%w: status line %q", ErrBadAnswer, line)
	}
	code := 0
	for i := 0; i < 3; i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: status line %q", ErrBadAnswer, line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 {
		// 1xx: the request asked for no Continue and no upgrade.
		return 0, fmt.Errorf("%w: status %d", ErrBadAnswer, code)
	}
	return code, nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v string) (int64, error) {
	if v == "" || len(v) > 18 || strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("%w: Content-Length %q", ErrBadAnswer, v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: Content-Length %q", ErrBadAnswer, v)
	}
	return n, nil
}

// statusText names the codes the daemon answers with, for a StatusError
// without a message.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 204:
		return "No Content"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 409:
		return "Conflict"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	}
	return ""
}
