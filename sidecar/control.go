package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
	"golang.org/x/sys/unix"
)

// ControlOptions configure the control socket.
type ControlOptions struct {
	Socket string // "": api.DefaultSocket
	// Group, when >= 0, may also use the socket (mode 0660, peer's group
	// checked); otherwise only root and the daemon's own user (mode 0600).
	Group int
	// TenantAccess makes the socket mode 0666: any local user may
	// connect, and a peer that is not root, the daemon's user or of Group
	// may use only the tenant endpoints of the tenants whose spec.access
	// names it (access.go); everyone else gets 403.
	TenantAccess bool
	// MaxConns bounds the open connections (0: DefaultControlMaxConns). At
	// the bound a new connection closes the oldest one that has no request
	// being answered; peers that are not root, the daemon's user or of
	// Group hold at most half of them, one uid an eighth (see
	// controlListener).
	MaxConns int
	// ReadTimeout bounds reading a request, headers and body; IdleTimeout
	// closes a keep-alive connection that sends no next request;
	// WriteTimeout bounds writing an answer. 0: the DefaultControl*Timeout.
	ReadTimeout, IdleTimeout, WriteTimeout time.Duration
}

// ListenControl opens the control socket: a unix socket that only root,
// the daemon's user and (optionally) one group may use. A stale socket file
// is replaced; a live one (another daemon) is an error. The listener
// enforces opt's limits when given to ServeControl.
func ListenControl(opt ControlOptions) (net.Listener, error) {
	path := opt.Socket
	if path == "" {
		path = api.DefaultSocket
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another nsproxy running?", path)
	}
	os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if opt.Group >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, opt.Group); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket group: %w", err)
		}
	}
	if opt.TenantAccess {
		mode = 0o666
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket mode: %w", err)
	}
	return newControlListener(ln, opt), nil
}

type credKey struct{}

// readPeerGroups is peerGroups; tests make it fail, as it does on kernels
// before 4.13.
var readPeerGroups = peerGroups

// groupsKey holds the peer's supplementary groups ([]uint32).
type groupsKey struct{}

// accessKey holds what the request may do (access).
type accessKey struct{}

// peerCred is the peer of a connection: read at accept for a
// controlListener's (readPeerCred).
func peerCred(c net.Conn) (*unix.Ucred, []uint32, error) {
	if cc, ok := c.(*controlConn); ok {
		return cc.cred, cc.groups, cc.credErr
	}
	return readPeerCred(c)
}

// readPeerCred reads SO_PEERCRED and SO_PEERGROUPS of a unix connection;
// without SO_PEERGROUPS the peer has no supplementary groups.
func readPeerCred(c net.Conn) (*unix.Ucred, []uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var cred *unix.Ucred
	var groups []uint32
	var cerr, gerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		groups, gerr = readPeerGroups(int(fd))
	})
	if gerr != nil {
		// Kernels before 4.13: the primary gid (SO_PEERCRED) only. The
		// groups of /proc/<pid> would be another process's once the
		// peer exits and its pid is reused.
		groups = nil
	}
	return cred, groups, cerr
}

// ServeControl serves the API on ln until ctx ends, with the limits of the
// ControlOptions ln was made with (ListenControl), or the defaults.
func (d *Daemon) ServeControl(ctx context.Context, ln net.Listener, group int) error {
	cl, ok := ln.(*controlListener)
	if !ok {
		cl = newControlListener(ln, ControlOptions{})
	}
	cl.mu.Lock()
	cl.log, cl.group = d.log, group
	cl.mu.Unlock()
	srv := &http.Server{
		Handler:     d.withHandover(controlHandler(d, d.log, group)),
		ReadTimeout: cl.opt.ReadTimeout,
		IdleTimeout: cl.opt.IdleTimeout,
		ConnState:   cl.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ctx = withConn(ctx, c)
			cred, groups, err := peerCred(c)
			if err != nil {
				return ctx
			}
			return context.WithValue(context.WithValue(ctx, credKey{}, cred), groupsKey{}, groups)
		},
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-d.HandedOver():
		}
		// The listener closes under d.ho.mu: a hand-over sets whether
		// closing it unlinks the path (SetUnlinkOnClose) under it.
		d.ho.mu.Lock()
		cl.Close()
		d.ho.mu.Unlock()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(cl)
	if errors.Is(err, http.ErrServerClosed) || d.handedOver() || ctx.Err() != nil {
		return nil
	}
	return err
}

// controlPlane is what the control API serves: the daemon's domain
// operations and views (objects.go). The HTTP layer maps requests onto it
// and its errors onto status codes, and knows nothing else of the daemon.
type controlPlane interface {
	Ready() bool
	namespaces() []api.Namespace
	AddNamespace(api.Namespace) error
	DeleteNamespace(name string) error
	frontends() []api.Frontend
	AddFrontend(api.Frontend) error
	DeleteFrontend(name string) error
	backends() []api.Backend
	AddBackend(api.Backend) error
	DeleteBackend(name string) error
	servers() []api.Server
	AddServer(api.Server) error
	DeleteServer(backend, name string) error
	connections() []api.Connection
	attachments() []api.Attachment
	attachmentView(api.AttachmentKey) (api.Attachment, bool)
	putAttachment(context.Context, api.Attachment) (updated bool, err error)
	deleteAttachment(context.Context, api.AttachmentKey) error
	GCAttachments(valid []api.AttachmentKey) ([]api.AttachmentKey, error)
	stats() api.Stats
	accessOf(cred *unix.Ucred, groups []uint32, group int) access
	applyManifests(access, api.ManifestRequest, manifestOp) (api.ManifestResult, error)
	tenantViews(access) []api.Tenant
}

var _ controlPlane = (*Daemon)(nil)

// controlHandler is the /v1 API; group is as in ControlOptions.
func controlHandler(cp controlPlane, log *slog.Logger, group int) http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(*http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			cred, _ := r.Context().Value(credKey{}).(*unix.Ucred)
			groups, _ := r.Context().Value(groupsKey{}).([]uint32)
			var acc access
			if allowedPeer(cred, groups, group) {
				acc = access{all: true, who: peerIdentity{uid: cred.Uid, gid: cred.Gid, groups: groups}.String()}
			} else if tenantRoutes[pattern] {
				acc = cp.accessOf(cred, groups, group)
			}
			if !acc.all && len(acc.tenants) == 0 {
				msg := "permission denied: the control socket is for root (or the configured group)"
				if tenantRoutes[pattern] {
					msg = fmt.Sprintf("permission denied: %s is named by no tenant's spec.access", acc.who)
				} else if cred != nil && !acc.all {
					msg += "; members of a tenant's spec.access may only apply, delete and diff its manifests and get tenants"
				}
				startAnswer(r)
				writeAnswer(w, r, http.StatusForbidden, api.Error{Error: msg})
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), accessKey{}, acc))
			if err := readBody(w, r); err != nil {
				code, body := errorBody(err)
				if errors.Is(err, errTooLarge) { // not a client that went away or was too slow
					log.Info("control request refused", "method", r.Method, "path", r.URL.Path, "code", code, "err", err.Error())
				}
				startAnswer(r)
				writeAnswer(w, r, code, body)
				return
			}
			startAnswer(r)
			code, body, err := f(r)
			if err != nil {
				code, body = errorBody(err)
				if r.Method != http.MethodGet {
					log.Info("control request refused", "method", r.Method, "path", r.URL.Path, "code", code, "err", err.Error())
				}
			}
			writeAnswer(w, r, code, body)
		})
	}
	h("GET /v1/healthz", func(*http.Request) (int, any, error) { return 200, map[string]string{"status": "ok"}, nil })
	h("GET /v1/readyz", func(*http.Request) (int, any, error) {
		if !cp.Ready() {
			return 503, api.Error{Error: "not ready"}, nil
		}
		return 200, map[string]string{"status": "ready"}, nil
	})
	h("GET /v1/namespaces", func(*http.Request) (int, any, error) { return 200, cp.namespaces(), nil })
	h("GET /v1/namespaces/{name}", func(r *http.Request) (int, any, error) {
		for _, n := range cp.namespaces() {
			if n.Name == r.PathValue("name") {
				return 200, n, nil
			}
		}
		return 0, nil, fmt.Errorf("namespace %q: %w", r.PathValue("name"), errNotFound)
	})
	h("POST /v1/namespaces", func(r *http.Request) (int, any, error) {
		var n api.Namespace
		if err := decode(r, &n); err != nil {
			return 0, nil, err
		}
		if err := cp.AddNamespace(n); err != nil {
			return 0, nil, err
		}
		for _, x := range cp.namespaces() {
			if x.Name == n.Name {
				return 201, x, nil
			}
		}
		return 201, n, nil
	})
	h("DELETE /v1/namespaces/{name}", func(r *http.Request) (int, any, error) {
		return 204, nil, cp.DeleteNamespace(r.PathValue("name"))
	})
	h("GET /v1/frontends", func(*http.Request) (int, any, error) { return 200, cp.frontends(), nil })
	h("GET /v1/frontends/{name}", func(r *http.Request) (int, any, error) {
		return findNamed(cp.frontends(), r.PathValue("name"), "frontend", func(f api.Frontend) string { return f.Name })
	})
	h("POST /v1/frontends", func(r *http.Request) (int, any, error) {
		var f api.Frontend
		if err := decode(r, &f); err != nil {
			return 0, nil, err
		}
		if err := cp.AddFrontend(f); err != nil {
			return 0, nil, err
		}
		return created(findNamed(cp.frontends(), f.Name, "frontend", func(f api.Frontend) string { return f.Name }))
	})
	h("DELETE /v1/frontends/{name}", func(r *http.Request) (int, any, error) {
		return 204, nil, cp.DeleteFrontend(r.PathValue("name"))
	})
	h("GET /v1/backends", func(*http.Request) (int, any, error) { return 200, cp.backends(), nil })
	h("GET /v1/backends/{name}", func(r *http.Request) (int, any, error) {
		return findNamed(cp.backends(), r.PathValue("name"), "backend", func(b api.Backend) string { return b.Name })
	})
	h("POST /v1/backends", func(r *http.Request) (int, any, error) {
		var b api.Backend
		if err := decode(r, &b); err != nil {
			return 0, nil, err
		}
		if err := cp.AddBackend(b); err != nil {
			return 0, nil, err
		}
		return created(findNamed(cp.backends(), b.Name, "backend", func(b api.Backend) string { return b.Name }))
	})
	h("DELETE /v1/backends/{name}", func(r *http.Request) (int, any, error) {
		return 204, nil, cp.DeleteBackend(r.PathValue("name"))
	})
	h("GET /v1/servers", func(*http.Request) (int, any, error) {
		var out []api.Server
		for _, b := range cp.backends() {
			out = append(out, b.Servers...)
		}
		return 200, nonNil(out), nil
	})
	h("POST /v1/backends/{backend}/servers", func(r *http.Request) (int, any, error) {
		var s api.Server
		if err := decode(r, &s); err != nil {
			return 0, nil, err
		}
		s.Backend = r.PathValue("backend")
		if err := cp.AddServer(s); err != nil {
			return 0, nil, err
		}
		for _, x := range cp.servers() {
			if x.Backend == s.Backend && x.Name == s.Name {
				return 201, x, nil
			}
		}
		return 201, s, nil
	})
	h("DELETE /v1/backends/{backend}/servers/{name}", func(r *http.Request) (int, any, error) {
		return 204, nil, cp.DeleteServer(r.PathValue("backend"), r.PathValue("name"))
	})
	h("GET /v1/connections", func(*http.Request) (int, any, error) { return 200, cp.connections(), nil })
	h("GET /v1/attachments", func(*http.Request) (int, any, error) { return 200, cp.attachments(), nil })
	h("GET /v1/attachments/{id}/{ifname}", func(r *http.Request) (int, any, error) {
		k := api.AttachmentKey{ContainerID: r.PathValue("id"), IfName: r.PathValue("ifname")}
		if a, ok := cp.attachmentView(k); ok {
			return 200, a, nil
		}
		return 0, nil, fmt.Errorf("attachment %s/%s: %w", k.ContainerID, k.IfName, errNotFound)
	})
	h("POST /v1/attachments", func(r *http.Request) (int, any, error) {
		var a api.Attachment
		if err := decode(r, &a); err != nil {
			return 0, nil, err
		}
		updated, err := cp.putAttachment(r.Context(), a)
		if err != nil {
			return 0, nil, err
		}
		code := 201
		if updated {
			code = 200
		}
		if x, ok := cp.attachmentView(a.AttachmentKey); ok {
			return code, x, nil
		}
		return code, a, nil
	})
	h("DELETE /v1/attachments/{id}/{ifname}", func(r *http.Request) (int, any, error) {
		return 204, nil, cp.deleteAttachment(r.Context(), api.AttachmentKey{ContainerID: r.PathValue("id"), IfName: r.PathValue("ifname")})
	})
	h("POST /v1/attachments/gc", func(r *http.Request) (int, any, error) {
		var req api.GCRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		removed, err := cp.GCAttachments(req.Valid)
		return 200, api.GCResult{Removed: nonNil(removed)}, err
	})
	h("GET /v1/stats", func(*http.Request) (int, any, error) { return 200, cp.stats(), nil })
	for pattern, op := range map[string]manifestOp{
		"POST /v1/manifests":        opApply,
		"POST /v1/manifests/delete": opDelete,
		"POST /v1/manifests/diff":   opDiff,
	} {
		h(pattern, func(r *http.Request) (int, any, error) {
			var req api.ManifestRequest
			if err := decode(r, &req); err != nil {
				return 0, nil, err
			}
			res, err := cp.applyManifests(requestAccess(r), req, op)
			return 200, res, err
		})
	}
	h("GET /v1/tenants", func(r *http.Request) (int, any, error) { return 200, cp.tenantViews(requestAccess(r)), nil })
	h("GET /v1/tenants/{name}", func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		acc := requestAccess(r)
		if !acc.may(name) {
			return 0, nil, fmt.Errorf("permission denied: %s may see only tenant %s, not %q (spec.access of the Tenant): %w",
				acc.who, strings.Join(acc.tenants, ", "), name, errForbidden)
		}
		return findNamed(cp.tenantViews(acc), name, "tenant", func(t api.Tenant) string { return t.Name })
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		startAnswer(r)
		writeAnswer(w, r, 404, api.Error{Error: fmt.Sprintf("no such endpoint: %s %s (see the README's API table)", r.Method, r.URL.Path)})
	})
	return mux
}

// tenantRoutes may be used by members of a tenant's spec.access, for
// their tenants only; every other route is for root and the socket group.
var tenantRoutes = map[string]bool{
	"POST /v1/manifests":        true,
	"POST /v1/manifests/delete": true,
	"POST /v1/manifests/diff":   true,
	"GET /v1/tenants":           true,
	"GET /v1/tenants/{name}":    true,
}

// requestAccess is what the request may do (set by controlHandler).
func requestAccess(r *http.Request) access {
	a, _ := r.Context().Value(accessKey{}).(access)
	return a
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// created turns a 200 lookup answer into 201.
func created(code int, body any, err error) (int, any, error) {
	if err == nil {
		code = http.StatusCreated
	}
	return code, body, err
}

func findNamed[T any](items []T, name, kind string, key func(T) string) (int, any, error) {
	for _, it := range items {
		if key(it) == name {
			return 200, it, nil
		}
	}
	return 0, nil, fmt.Errorf("%s %q: %w", kind, name, errNotFound)
}

// maxBody bounds every request body: the largest is an attachment, and an
// attachment whose record the hooks can write must fit (hooks checks that
// its record, always longer than the body, fits the same bound).
const maxBody = hooks.MaxAttachmentSize

// errTooLarge maps to 413.
var errTooLarge = errors.New("request body too large")

// readBody reads the whole body (at most maxBody) before the request is
// handled, so that a slow body is read while its connection may still
// give way (controlListener), and replaces r.Body with what was read.
func readBody(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("%w: the limit is %d bytes", errTooLarge, mbe.Limit)
	case err != nil:
		return &objectError{msg: "cannot read the request body", details: []string{err.Error()}}
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// decode decodes the request's body (read by readBody) into v with
// decodeBody.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return &objectError{msg: "cannot read the request body", details: []string{err.Error()}}
	}
	return decodeBody(b, v)
}

// decodeBody is the one decoder of request bodies: exactly one JSON value
// of v's type, no unknown fields, no key given twice in an object (also
// in another case: encoding/json would take the last), and nothing but
// white space after it.
func decodeBody(b []byte, v any) error {
	if key, first, path, found := repeatedKey(b); found {
		detail := fmt.Sprintf("%s: field %q is given twice; remove one", path, key)
		if key != first {
			detail = fmt.Sprintf("%s: field %q repeats %q (field names are matched without regard to case); remove one", path, key, first)
		}
		return &objectError{msg: "request body is not valid JSON for this endpoint", details: []string{detail}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return &objectError{msg: "request body is empty: send a JSON object"}
		}
		return &objectError{msg: "request body is not valid JSON for this endpoint", details: []string{err.Error()}}
	}
	off := dec.InputOffset()
	if rest := bytes.TrimLeft(b[off:], " \t\r\n"); len(rest) > 0 {
		return &objectError{msg: "request body is not valid JSON for this endpoint",
			details: []string{fmt.Sprintf("data after the JSON value at byte %d: send exactly one object", off+int64(len(b[off:])-len(rest)))}}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(body)
}

// errorBody maps an error to a status and an api.Error with one detail per
// problem (config errors come joined, one per FILE:LINE).
func errorBody(err error) (int, api.Error) {
	code := http.StatusInternalServerError
	var oe *objectError
	var ve *validationError
	switch {
	case errors.Is(err, errNotFound):
		code = http.StatusNotFound
	case errors.Is(err, errConflict):
		code = http.StatusConflict
	case errors.Is(err, errForbidden):
		code = http.StatusForbidden
	case errors.Is(err, errTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, errUpgrading):
		code = http.StatusServiceUnavailable
	case errors.As(err, &oe):
		return http.StatusBadRequest, api.Error{Error: oe.msg, Details: oe.details}
	case errors.As(err, &ve):
		return http.StatusBadRequest, api.Error{Error: "the change does not validate; nothing was applied", Details: flatten(ve.err)}
	case errors.Is(err, config.ErrSyntax), errors.Is(err, config.ErrInvalid), errors.Is(err, config.ErrUnsupported):
		return http.StatusBadRequest, api.Error{Error: "invalid", Details: flatten(err)}
	}
	return code, api.Error{Error: err.Error()}
}

// flatten lists the leaves of a tree of joined errors.
func flatten(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []string{err.Error()}
}
