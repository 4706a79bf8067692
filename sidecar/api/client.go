package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// DefaultTimeout bounds each request of a Client made without WithTimeout.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds what the client decodes: lists of connections can be
// long.
const maxAnswer = 256 << 20

// ErrUnreachable matches (errors.Is) every error from a Client that could
// not connect to the control socket. The client's errors are the hooks'
// client's: the CLI, the CNI plugin and the OCI hook test the same values.
var ErrUnreachable = hooks.ErrUnreachable

// IsNotFound reports whether err is a 404 answer from the daemon.
func IsNotFound(err error) bool { return hooks.IsNotFound(err) }

type (
	// UnreachableError is returned when the socket cannot be dialled: the
	// daemon is not running, the path is wrong or the caller may not use
	// the socket. It unwraps to the dial error.
	UnreachableError = hooks.UnreachableError
	// StatusError is a non-2xx answer from the daemon.
	StatusError = hooks.StatusError
	// ClientOption configures a Client.
	ClientOption = hooks.ClientOption
)

// WithTimeout bounds each request (dial, send, answer); 0 means no bound
// other than the caller's context. The default is DefaultTimeout.
func WithTimeout(d time.Duration) ClientOption { return hooks.WithTimeout(d) }

// Client talks to the daemon's control socket: the hooks' client (one
// connection per request, nothing held between them) with the whole API.
// It is safe for concurrent use.
type Client struct {
	c *hooks.Client
}

// NewClient returns a client of the daemon listening on socket (empty:
// DefaultSocket). It does not connect until the first request.
func NewClient(socket string, opts ...ClientOption) *Client {
	base := []ClientOption{hooks.WithTimeout(DefaultTimeout), hooks.WithAnswerLimit(maxAnswer)}
	return &Client{c: hooks.NewClient(socket, append(base, opts...)...)}
}

// Socket is the path the client dials.
func (c *Client) Socket() string { return c.c.Socket() }

// do sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). It returns the status code of the answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	return c.c.Do(ctx, method, path, in, out)
}

// objectPath joins escaped segments under /v1: ("namespaces", "a/b") is
// /v1/namespaces/a%2Fb.
func objectPath(segments ...string) (string, error) {
	p := "/" + Version
	for _, s := range segments {
		switch s {
		case "", ".", "..":
			// An empty segment would address the collection, and the dot
			// segments would be cleaned away into another path.
			return "", fmt.Errorf("nsproxy: bad name %q in path %s/...", s, p)
		}
		p += "/" + url.PathEscape(s)
	}
	return p, nil
}

// get fetches the object at the path of segments into out.
func (c *Client) get(ctx context.Context, out any, segments ...string) error {
	p, err := objectPath(segments...)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodGet, p, nil, out)
	return err
}

// del deletes the object at the path of segments.
func (c *Client) del(ctx context.Context, segments ...string) error {
	p, err := objectPath(segments...)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodDelete, p, nil, nil)
	return err
}

// create posts in to p and returns the daemon's view of the object, or in
// itself when the daemon answers without a body. created is false when the
// daemon answered 200 (updated) instead of 201.
func create[T any](ctx context.Context, c *Client, p string, in T) (out T, created bool, err error) {
	code, err := c.do(ctx, http.MethodPost, p, in, &out)
	if errors.Is(err, hooks.ErrEmptyAnswer) {
		return in, code == http.StatusCreated, nil
	}
	if err != nil {
		var zero T
		return zero, false, err
	}
	return out, code == http.StatusCreated, nil
}

// Healthz checks that the daemon answers.
func (c *Client) Healthz(ctx context.Context) error {
	return c.get(ctx, nil, "healthz")
}

// Readyz checks that the daemon is ready; a *StatusError (503) says why not.
func (c *Client) Readyz(ctx context.Context) error {
	return c.get(ctx, nil, "readyz")
}

// Namespaces lists the registry.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	var l []Namespace
	err := c.get(ctx, &l, "namespaces")
	return l, err
}

// Namespace gets one registry entry.
func (c *Client) Namespace(ctx context.Context, name string) (Namespace, error) {
	var n Namespace
	err := c.get(ctx, &n, "namespaces", name)
	return n, err
}

// AddNamespace registers n (Name and at most one of Path or Pid).
func (c *Client) AddNamespace(ctx context.Context, n Namespace) (Namespace, error) {
	out, _, err := create(ctx, c, "/"+Version+"/namespaces", n)
	return out, err
}

// DeleteNamespace removes a namespace from the registry.
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	return c.del(ctx, "namespaces", name)
}

// Frontends lists frontends with their status.
func (c *Client) Frontends(ctx context.Context) ([]Frontend, error) {
	var l []Frontend
	err := c.get(ctx, &l, "frontends")
	return l, err
}

// Frontend gets one frontend.
func (c *Client) Frontend(ctx context.Context, name string) (Frontend, error) {
	var f Frontend
	err := c.get(ctx, &f, "frontends", name)
	return f, err
}

// AddFrontend creates a frontend.
func (c *Client) AddFrontend(ctx context.Context, f Frontend) (Frontend, error) {
	out, _, err := create(ctx, c, "/"+Version+"/frontends", f)
	return out, err
}

// DeleteFrontend removes a frontend.
func (c *Client) DeleteFrontend(ctx context.Context, name string) error {
	return c.del(ctx, "frontends", name)
}

// Backends lists backends with their servers.
func (c *Client) Backends(ctx context.Context) ([]Backend, error) {
	var l []Backend
	err := c.get(ctx, &l, "backends")
	return l, err
}

// Backend gets one backend.
func (c *Client) Backend(ctx context.Context, name string) (Backend, error) {
	var b Backend
	err := c.get(ctx, &b, "backends", name)
	return b, err
}

// AddBackend creates a backend.
func (c *Client) AddBackend(ctx context.Context, b Backend) (Backend, error) {
	out, _, err := create(ctx, c, "/"+Version+"/backends", b)
	return out, err
}

// DeleteBackend removes a backend.
func (c *Client) DeleteBackend(ctx context.Context, name string) error {
	return c.del(ctx, "backends", name)
}

// Servers lists the servers of every backend.
func (c *Client) Servers(ctx context.Context) ([]Server, error) {
	var l []Server
	err := c.get(ctx, &l, "servers")
	return l, err
}

// AddServer adds s to the backend s.Backend.
func (c *Client) AddServer(ctx context.Context, s Server) (Server, error) {
	p, err := objectPath("backends", s.Backend, "servers")
	if err != nil {
		return Server{}, err
	}
	out, _, err := create(ctx, c, p, s)
	return out, err
}

// DeleteServer removes server name from backend.
func (c *Client) DeleteServer(ctx context.Context, backend, name string) error {
	return c.del(ctx, "backends", backend, "servers", name)
}

// Connections lists the proxied connections.
func (c *Client) Connections(ctx context.Context) ([]Connection, error) {
	var l []Connection
	err := c.get(ctx, &l, "connections")
	return l, err
}

// Attachments lists registered attachments.
func (c *Client) Attachments(ctx context.Context) ([]Attachment, error) {
	var l []Attachment
	err := c.get(ctx, &l, "attachments")
	return l, err
}

// Attachment gets one attachment.
func (c *Client) Attachment(ctx context.Context, key AttachmentKey) (Attachment, error) {
	var a Attachment
	err := c.get(ctx, &a, "attachments", key.ContainerID, key.IfName)
	return a, err
}

// PutAttachment registers a, or updates the attachment with its key;
// created tells which.
func (c *Client) PutAttachment(ctx context.Context, a Attachment) (out Attachment, created bool, err error) {
	return create(ctx, c, "/"+Version+"/attachments", a)
}

// DeleteAttachment removes an attachment; removing an absent one succeeds.
func (c *Client) DeleteAttachment(ctx context.Context, key AttachmentKey) error {
	return c.del(ctx, "attachments", key.ContainerID, key.IfName)
}

// GCAttachments removes every attachment not listed in req.Valid.
func (c *Client) GCAttachments(ctx context.Context, req GCRequest) (GCResult, error) {
	var res GCResult
	_, err := c.do(ctx, http.MethodPost, "/"+Version+"/attachments/gc", req, &res)
	return res, err
}

// Stats gets the daemon-wide summary.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.get(ctx, &s, "stats")
	return s, err
}
