package hooks

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestReadAnswer(t *testing.T) {
	const limit = 32
	tests := []struct {
		name    string
		in      string
		code    int
		body    string
		wantErr string // substring; "" means success
	}{
		{"content length", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", ""},
		{"http 1.1 status line", "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n[1]", 201, "[1]", ""},
		{"until close", "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\n", 200, "{\"a\":1}\n", ""},
		{"bare LF lines", "HTTP/1.0 404 Not Found\nContent-Length: 1\n\nx", 404, "x", ""},
		{"no reason", "HTTP/1.0 503\r\n\r\nstarting", 503, "starting", ""},
		{"no content", "HTTP/1.0 204 No Content\r\n\r\n", 204, "", ""},
		{"no content ignores a body", "HTTP/1.0 204 No Content\r\nContent-Length: 5\r\n\r\nhello", 204, "", ""},
		{"header case and spaces", "HTTP/1.0 200 OK\r\ncontent-length:\t 2 \r\n\r\nok", 200, "ok", ""},
		{"same length twice", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 200, "ok", ""},
		{"empty body", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", ""},
		{"body at the limit", "HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("x", limit), 200, strings.Repeat("x", limit), ""},

		{"nothing", "", 0, "", "connection closed before an answer"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", "status line"},
		{"http 2", "HTTP/2 200\r\n\r\n", 0, "", "status line"},
		{"short code", "HTTP/1.0 20 OK\r\n\r\n", 0, "", "status line"},
		{"code with letters", "HTTP/1.0 2x0 OK\r\n\r\n", 0, "", "status line"},
		{"code run on", "HTTP/1.0 2000 OK\r\n\r\n", 0, "", "status line"},
		{"informational", "HTTP/1.1 100 Continue\r\n\r\n", 0, "", "status 100"},
		{"header cut", "HTTP/1.0 200 OK\r\nContent-Len", 0, "", "closed in a line"},
		{"header never ends", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", 0, "", "closed in the header"},
		{"header without colon", "HTTP/1.0 200 OK\r\nbogus\r\n\r\n", 0, "", "header line"},
		{"space in name", "HTTP/1.0 200 OK\r\nContent Length: 2\r\n\r\nok", 0, "", "header line"},
		{"negative length", "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "", "Content-Length \"-1\""},
		{"length with sign", "HTTP/1.0 200 OK\r\nContent-Length: +2\r\n\r\nok", 0, "", "Content-Length \"+2\""},
		{"huge length", "HTTP/1.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", 0, "", "Content-Length"},
		{"two lengths", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", 0, "", "two different"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 0, "", "Transfer-Encoding"},
		{"body cut short", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0, "", "cut short"},
		{"length over limit", "HTTP/1.0 200 OK\r\nContent-Length: 33\r\n\r\n", 0, "", "33 bytes, more than the 32"},
		{"body over limit", "HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("x", limit+1), 0, "", "more than the 32 bytes"},
		{"NUL in header", "HTTP/1.0 200 OK\r\nX: a\x00b\r\n\r\n", 0, "", "control character"},
		{"CR inside a line", "HTTP/1.0 200 OK\r\nX: a\rb\r\n\r\n", 0, "", "control character"},
		{"long status line", "HTTP/1.0 200 " + strings.Repeat("A", maxStatusLine) + "\r\n\r\n", 0, "", "longer than"},
		{"long header line", "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("A", maxHeaderLine) + "\r\n\r\n", 0, "", "longer than"},
		{"too many headers", "HTTP/1.0 200 OK\r\n" + strings.Repeat("X: y\r\n", maxHeaders+1) + "\r\n", 0, "", "more than 64 header fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A small buffer makes long lines cross bufio's buffer.
			got, err := readAnswer(bufio.NewReaderSize(strings.NewReader(tt.in), 16), limit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadAnswer) {
					t.Fatalf("err %v, want ErrBadAnswer with %q (answer %+v)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.code != tt.code || string(got.body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", got.code, got.body, tt.code, tt.body)
			}
		})
	}
}

// TestReadAnswerOfNetHTTP: what the daemon's net/http server writes for
// an HTTP/1.0 request, small and large, is read back exactly.
func TestReadAnswerOfNetHTTP(t *testing.T) {
	for _, size := range []int{0, 10, 5000, 300 << 10} {
		body := bytes.Repeat([]byte("a"), size)
		rec := &http.Response{
			StatusCode: 200, ProtoMajor: 1, ProtoMinor: 0,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          nopCloser{bytes.NewReader(body)},
			ContentLength: -1, Close: true,
		}
		var wire bytes.Buffer
		if err := rec.Write(&wire); err != nil {
			t.Fatal(err)
		}
		got, err := readAnswer(bufio.NewReader(&wire), 1<<20)
		if err != nil || got.code != 200 || !bytes.Equal(got.body, body) {
			t.Fatalf("size %d: %v code %d, %d bytes", size, err, got.code, len(got.body))
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestRequestBytes(t *testing.T) {
	got, err := requestBytes("POST", "/v1/attachments", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(got)))
	if err != nil {
		t.Fatalf("net/http cannot read %q: %v", got, err)
	}
	if req.Method != "POST" || req.URL.Path != "/v1/attachments" || req.ProtoMinor != 0 || req.ContentLength != 7 ||
		req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("read %+v", req)
	}
	if _, err := requestBytes("GET", "/v1/x", nil); err != nil {
		t.Error(err)
	}
	for _, bad := range []struct{ method, path string }{
		{"GET", "v1/x"}, {"GET", "/v1/a b"}, {"GET", "/v1/a\r\nX: y"}, {"GET", "/v1/\x7f"}, {"get", "/v1"}, {"", "/v1"},
		{"GET /v1 HTTP/1.0\r\n", "/v1"},
	} {
		if b, err := requestBytes(bad.method, bad.path, nil); err == nil {
			t.Errorf("%q %q: accepted as %q", bad.method, bad.path, b)
		}
	}
}

// FuzzReadAnswer: any bytes give an answer within the limit or an error,
// never a panic; an accepted answer is exactly what was sent.
func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\n\r\n{\"error\":\"x\"}"))
	f.Add([]byte("HTTP/1.0 204 No Content\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		got, err := readAnswer(bufio.NewReaderSize(bytes.NewReader(in), 16), limit)
		if err != nil {
			if got.code != 0 || got.body != nil {
				t.Fatalf("error %v with an answer %+v", err, got)
			}
			return
		}
		if got.code < 200 || got.code > 599 || len(got.body) > limit {
			t.Fatalf("accepted %+v", got)
		}
		if !bytes.Contains(in, got.body) {
			t.Fatalf("body %q is not in the input", got.body)
		}
	})
}
