package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds each request of a Client made without WithTimeout.
// Hooks run while a container starts: a daemon that does not answer within
// it is treated as down (the attachment record keeps the request).
const DefaultTimeout = 2 * time.Second

// Limits on what the client reads from the daemon: a confused peer cannot
// make it buffer without end. A hook reads one attachment; callers that
// list more raise the first with WithAnswerLimit.
const (
	defaultMaxAnswer = 16 << 20
	maxErrorBody     = 1 << 20
)

// ErrEmptyAnswer says that a 2xx answer had no body where one was expected.
var ErrEmptyAnswer = errors.New("nsproxy: empty answer")

// ErrUnreachable matches (errors.Is) every error of a Client that could not
// connect to the daemon's socket.
var ErrUnreachable = errors.New("nsproxy: daemon unreachable")

// UnreachableError is returned when the socket cannot be dialled: the
// daemon is not running, the path is wrong or the caller may not use it.
// It unwraps to the dial error.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	reason := e.Err
	var se *os.SyscallError
	if errors.As(e.Err, &se) {
		reason = se.Err
	}
	return fmt.Sprintf("cannot reach nsproxy at %s: %v; is the daemon running (nsproxy run) and are you root?", e.Socket, reason)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// ErrorBody is the body of every non-2xx answer of the daemon.
type ErrorBody struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// StatusError is a non-2xx answer of the daemon with its message. It is
// the one error type of every client of the daemon (hooks, CLI).
type StatusError struct {
	Code    int
	Message string
	Details []string
}

// Text is the daemon's message, or the status when it sent none.
func (e *StatusError) Text() string {
	if e.Message == "" {
		return strings.TrimSpace(fmt.Sprintf("%d %s", e.Code, statusText(e.Code)))
	}
	return e.Message
}

// Error is the daemon's message followed by its details, on one line (it
// goes into CNI errors and logs).
func (e *StatusError) Error() string {
	msg := e.Text()
	if len(e.Details) == 0 {
		return "nsproxy: " + msg
	}
	return "nsproxy: " + msg + ": " + strings.Join(e.Details, "; ")
}

// IsNotFound reports whether err is a 404 answer of the daemon.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == 404
}

// IsRejected reports whether the daemon answered err with a 4xx status:
// it refused the request itself (invalid, conflicting), so repeating it
// will not help. Everything else that fails (unreachable, timeout, 5xx,
// a garbled answer) may be gone on the next try.
func IsRejected(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500
}

// Client talks to the daemon's control socket: one HTTP/1.0 request per
// connection (wire.go). It is safe for concurrent use and holds nothing
// open between requests.
type Client struct {
	socket    string
	timeout   time.Duration
	maxAnswer int64
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithTimeout bounds each request (dial, send, answer); 0 means no bound
// other than the caller's context. The default is DefaultTimeout.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.timeout = d }
}

// WithAnswerLimit bounds the size of a 2xx answer the client decodes; the
// default, 16 MiB, is ample for attachments but not for long lists.
func WithAnswerLimit(n int64) ClientOption {
	return func(c *Client) { c.maxAnswer = n }
}

// NewClient returns a client of the daemon at socket (empty: DefaultSocket).
// It does not connect until the first request.
func NewClient(socket string, opts ...ClientOption) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	c := &Client{socket: socket, timeout: DefaultTimeout, maxAnswer: defaultMaxAnswer}
	for _, o := range opts {
		o(c)
	}
	return c
}

// dialUnix dials socket, retrying while its accept queue is full: a unix
// connect fails at once with EAGAIN then, where TCP would wait. The daemon
// frees the queue quickly; a flood of other clients must not make a hook or
// the CLI give up at the first try.
func dialUnix(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	wait := 5 * time.Millisecond
	for {
		conn, err := d.DialContext(ctx, "unix", socket)
		if err == nil || !errors.Is(err, syscall.EAGAIN) {
			return conn, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Socket is the path the client dials.
func (c *Client) Socket() string { return c.socket }

// PutAttachment registers a, or updates the attachment with its key, and
// returns the daemon's view of it (with its status fields).
func (c *Client) PutAttachment(ctx context.Context, a Attachment) (Attachment, error) {
	var out Attachment
	if _, err := c.Do(ctx, "POST", "/v1/attachments", a.WithoutStatus(), &out); err != nil {
		return Attachment{}, err
	}
	return out, nil
}

// Attachment gets one attachment; IsNotFound(err) when the daemon has none
// with that key.
func (c *Client) Attachment(ctx context.Context, k AttachmentKey) (Attachment, error) {
	p, err := attachmentPath(k)
	if err != nil {
		return Attachment{}, err
	}
	var out Attachment
	if _, err := c.Do(ctx, "GET", p, nil, &out); err != nil {
		return Attachment{}, err
	}
	return out, nil
}

// Attachments lists every attachment the daemon has.
func (c *Client) Attachments(ctx context.Context) ([]Attachment, error) {
	var out []Attachment
	_, err := c.Do(ctx, "GET", "/v1/attachments", nil, &out)
	return out, err
}

// DeleteAttachment removes an attachment; removing a missing one is not an
// error.
func (c *Client) DeleteAttachment(ctx context.Context, k AttachmentKey) error {
	p, err := attachmentPath(k)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, "DELETE", p, nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// GC makes the daemon drop every attachment, of every source, that is not
// in valid, and returns the keys it removed.
func (c *Client) GC(ctx context.Context, valid []AttachmentKey) ([]AttachmentKey, error) {
	if valid == nil {
		valid = []AttachmentKey{}
	}
	var out GCResult
	_, err := c.Do(ctx, "POST", "/v1/attachments/gc", GCRequest{Valid: valid}, &out)
	return out.Removed, err
}

// Ready returns nil when the daemon is ready; a *StatusError (503) says why
// not.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Do(ctx, "GET", "/v1/readyz", nil, nil)
	return err
}

// attachmentPath is /v1/attachments/ID/IFNAME with both escaped.
func attachmentPath(k AttachmentKey) (string, error) {
	for _, s := range []string{k.ContainerID, k.IfName} {
		if s == "" || s == "." || s == ".." {
			// These would address another path once cleaned.
			return "", fmt.Errorf("nsproxy: bad attachment key %q/%q", k.ContainerID, k.IfName)
		}
	}
	return "/v1/attachments/" + url.PathEscape(k.ContainerID) + "/" + url.PathEscape(k.IfName), nil
}

// Do sends in (if not nil) as JSON to path (/v1/...) and decodes a 2xx
// answer into out (if not nil). It returns the answer's status code. A
// non-2xx answer is a *StatusError; a 2xx answer without a body where out
// wants one is ErrEmptyAnswer.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	parent := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = b
	}
	req, err := requestBytes(method, path, body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	ans, err := c.roundTrip(ctx, req, max(c.maxAnswer, maxErrorBody))
	if err != nil {
		return 0, c.transportError(parent, method, path, err)
	}
	if ans.code < 200 || ans.code > 299 {
		return ans.code, statusError(ans)
	}
	if int64(len(ans.body)) > c.maxAnswer {
		return ans.code, fmt.Errorf("%s %s: bad answer from nsproxy at %s: %d bytes, more than the %d this request reads",
			method, path, c.socket, len(ans.body), c.maxAnswer)
	}
	if out == nil || ans.code == 204 {
		return ans.code, nil
	}
	if len(strings.TrimSpace(string(ans.body))) == 0 {
		return ans.code, fmt.Errorf("%s %s: bad answer from nsproxy at %s: %w", method, path, c.socket, ErrEmptyAnswer)
	}
	if err := json.Unmarshal(ans.body, out); err != nil {
		return ans.code, fmt.Errorf("%s %s: bad answer from nsproxy at %s: %w", method, path, c.socket, err)
	}
	return ans.code, nil
}

// roundTrip sends req on a new connection and reads the answer within
// ctx.
func (c *Client) roundTrip(ctx context.Context, req []byte, limit int64) (answer, error) {
	conn, err := dialUnix(ctx, c.socket)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, ctx.Err()
		}
		return answer{}, &UnreachableError{Socket: c.socket, Err: err}
	}
	defer conn.Close()
	// The end of ctx (its deadline included) interrupts a read or write in
	// progress; ctx.Err() is set by then, so the error names the timeout.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	ans, err := exchange(conn, req, limit)
	if err != nil && ctx.Err() != nil {
		return answer{}, ctx.Err()
	}
	return ans, err
}

// exchange writes req and reads one answer of at most limit bytes.
func exchange(conn net.Conn, req []byte, limit int64) (answer, error) {
	if _, err := conn.Write(req); err != nil {
		return answer{}, err
	}
	return readAnswer(bufio.NewReaderSize(conn, 4096), limit)
}

// transportError explains a request that got no answer. parent is the
// caller's context, without the client's own timeout.
func (c *Client) transportError(parent context.Context, method, path string, err error) error {
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return ue
	}
	if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil && c.timeout > 0 {
		return fmt.Errorf("nsproxy at %s did not answer %s %s within %v: %w", c.socket, method, path, c.timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("nsproxy at %s: %s %s: %w", c.socket, method, path, err)
}

// statusError turns a non-2xx answer into a StatusError; a body that is
// not the daemon's {"error","details"} is kept as the message.
func statusError(ans answer) error {
	b := ans.body
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
	}
	var body ErrorBody
	se := &StatusError{Code: ans.code}
	if err := json.Unmarshal(b, &body); err == nil && body.Error != "" {
		se.Message, se.Details = body.Error, body.Details
	} else {
		se.Message = strings.TrimSpace(string(b))
	}
	return se
}
