package sidecar

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// Run-time objects are validated exactly like the configuration file: each
// is rendered as the config lines it stands for and parsed by package
// config, then merged with the files' model and validated as a whole.

// safeWord: what a rendered config word may contain. Anything else (spaces,
// quotes, '#', backslashes) could smuggle extra keywords into the line.
func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._:-*+[]/%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

type lineBuilder struct {
	words []string
	bad   []string
}

func (lb *lineBuilder) add(field, v string) {
	if !safeWord(v) {
		lb.bad = append(lb.bad, fmt.Sprintf("%s %q: use letters, digits and . _ : - * + [ ] / only", field, v))
		return
	}
	lb.words = append(lb.words, v)
}

func (lb *lineBuilder) kw(words ...string) { lb.words = append(lb.words, words...) }

func (lb *lineBuilder) line() string { return "    " + strings.Join(lb.words, " ") + "\n" }

func serverLine(s api.Server) (string, []string) {
	var lb lineBuilder
	lb.kw("server")
	lb.add("name", s.Name)
	lb.add("addr", s.Addr)
	if s.Namespace != "" {
		lb.kw("namespace")
		lb.add("namespace", s.Namespace)
	}
	if s.Check {
		lb.kw("check")
	}
	if s.Inter != "" {
		lb.kw("inter")
		lb.add("inter", s.Inter)
	}
	if s.Rise != 0 {
		lb.kw("rise", strconv.Itoa(s.Rise))
	}
	if s.Fall != 0 {
		lb.kw("fall", strconv.Itoa(s.Fall))
	}
	if s.Weight != nil {
		lb.kw("weight", strconv.Itoa(*s.Weight))
	}
	if s.Backup {
		lb.kw("backup")
	}
	if s.Disabled {
		lb.kw("disabled")
	}
	switch s.SendProxy {
	case 0:
	case 1:
		lb.kw("send-proxy")
	case 2:
		lb.kw("send-proxy-v2")
	default:
		lb.bad = append(lb.bad, fmt.Sprintf("sendProxy %d: use 0, 1 or 2", s.SendProxy))
	}
	return lb.line(), lb.bad
}

func backendText(b api.Backend) (string, []string) {
	var bad []string
	var sb strings.Builder
	var lb lineBuilder
	lb.kw("backend")
	lb.add("name", b.Name)
	sb.WriteString(strings.TrimSpace(lb.line()) + "\n")
	bad = append(bad, lb.bad...)
	opt := func(kw, field, v string) {
		if v == "" {
			return
		}
		var l lineBuilder
		l.kw(strings.Fields(kw)...)
		l.add(field, v)
		sb.WriteString(l.line())
		bad = append(bad, l.bad...)
	}
	opt("balance", "balance", b.Balance)
	opt("timeout connect", "connectTimeout", b.ConnectTimeout)
	opt("timeout server", "serverTimeout", b.ServerTimeout)
	for _, s := range b.Servers {
		l, sbad := serverLine(s)
		sb.WriteString(l)
		bad = append(bad, sbad...)
	}
	return sb.String(), bad
}

func frontendText(f api.Frontend) (string, []string) {
	var bad []string
	var sb strings.Builder
	var lb lineBuilder
	lb.kw("frontend")
	lb.add("name", f.Name)
	sb.WriteString(strings.TrimSpace(lb.line()) + "\n")
	bad = append(bad, lb.bad...)
	for _, b := range f.Binds {
		var l lineBuilder
		l.kw("bind")
		l.add("bind addr", b.Addr)
		if b.Namespace != "" {
			l.kw("namespace")
			l.add("bind namespace", b.Namespace)
		}
		if b.AcceptProxy {
			l.kw("accept-proxy")
		}
		if b.V4V6 {
			l.kw("v4v6")
		}
		if b.V6Only {
			l.kw("v6only")
		}
		sb.WriteString(l.line())
		bad = append(bad, l.bad...)
	}
	for _, kv := range [][3]string{{"default_backend", "backend", f.Backend}, {"timeout client", "clientTimeout", f.ClientTimeout}} {
		if kv[2] == "" {
			continue
		}
		var l lineBuilder
		l.kw(strings.Fields(kv[0])...)
		l.add(kv[1], kv[2])
		sb.WriteString(l.line())
		bad = append(bad, l.bad...)
	}
	if f.MaxConn != 0 {
		sb.WriteString("    maxconn " + strconv.Itoa(f.MaxConn) + "\n")
	}
	return sb.String(), bad
}

// Keys of run-time objects: the names their problems carry, as the file
// name of a config error's position or objectError.obj.
func backendKey(name string) string         { return "backend " + name }
func serverKey(backend, name string) string { return "server " + backend + "/" + name }
func frontendKey(name string) string        { return "frontend " + name }

// parseObject parses rendered text as a config file named what, the
// object's key.
func parseObject(what, text string, bad []string) (*config.Config, error) {
	if len(bad) > 0 {
		return nil, &objectError{msg: what + " is invalid", details: bad, obj: what}
	}
	c, err := config.Parse(what, []byte(text))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// objectError carries a message and details for the API's error body.
type objectError struct {
	msg     string
	details []string
	obj     string // the key of the run-time object at fault, if one is
}

func (e *objectError) Error() string {
	if len(e.details) == 0 {
		return e.msg
	}
	return e.msg + ": " + strings.Join(e.details, "; ")
}

func (e *objectError) Unwrap() error { return ErrInvalidObject }

// blame files every problem of a plan's error under the key of the
// run-time object it is about; problems of the files have no such key.
func blame(err error, out map[string][]string) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			blame(e, out)
		}
		return
	}
	var oe *objectError
	var ce *config.Error
	switch {
	case errors.As(err, &oe) && oe.obj != "":
		out[oe.obj] = append(out[oe.obj], err.Error())
	case errors.As(err, &ce):
		out[ce.Pos.File] = append(out[ce.Pos.File], ce.Msg)
	}
}

func detailsError(what string, details []string) error {
	return &objectError{msg: what + " is invalid", details: details}
}

// parseCache keeps the parse of each run-time object from one plan to the
// next, keyed by its rendered text: re-parsing thousands of unchanged
// objects made every write cost grow with the live objects. Entries the
// last plan did not use are dropped. Parsed values are shared: merge copies
// a backend before it adds servers to it.
type parseCache struct{ prev, next map[string]*config.Config }

func (pc *parseCache) parse(what, text string, bad []string) (*config.Config, error) {
	if pc == nil || len(bad) > 0 {
		return parseObject(what, text, bad)
	}
	key := what + "\x00" + text
	if c, ok := pc.prev[key]; ok {
		pc.next[key] = c
		return c, nil
	}
	c, err := parseObject(what, text, bad)
	if err == nil {
		pc.next[key] = c
	}
	return c, err
}

func (pc *parseCache) start() {
	if pc != nil {
		pc.next = make(map[string]*config.Config, len(pc.prev))
	}
}

func (pc *parseCache) done() {
	if pc != nil {
		pc.prev, pc.next = pc.next, nil
	}
}

// merge builds the desired configuration: the files' model plus every
// run-time object. Objects that do not fit are reported, with names.
func merge(file *config.Config, st State, exposures []exposure) (*config.Config, error) {
	return mergeWith(nil, file, st, exposures)
}

// mergeWith is merge with the parses of the last plan at hand (pc may be nil).
func mergeWith(pc *parseCache, file *config.Config, st State, exposures []exposure) (*config.Config, error) {
	pc.start()
	defer pc.done()
	m := &config.Config{Global: file.Global, Namespaces: slices.Clone(file.Namespaces)}
	m.Frontends = slices.Clone(file.Frontends)
	backends := map[string]*config.Backend{}
	for _, b := range file.Backends {
		cp := *b
		cp.Servers = slices.Clone(b.Servers)
		m.Backends = append(m.Backends, &cp)
		backends[b.Name] = &cp
	}
	var errs []error
	for _, b := range st.Backends {
		text, bad := backendText(b)
		c, err := pc.parse(backendKey(b.Name), text, bad)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, cb := range c.Backends {
			cp := *cb
			cp.Servers = slices.Clone(cb.Servers)
			m.Backends = append(m.Backends, &cp)
			backends[cb.Name] = &cp
		}
	}
	for _, s := range st.Servers {
		cb := backends[s.Backend]
		if cb == nil {
			errs = append(errs, &objectError{msg: fmt.Sprintf("server %s/%s: backend %q does not exist", s.Backend, s.Name, s.Backend),
				obj: serverKey(s.Backend, s.Name)})
			continue
		}
		l, bad := serverLine(s)
		c, err := pc.parse(serverKey(s.Backend, s.Name), "backend x\n"+l, bad)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cb.Servers = append(cb.Servers, c.Backends[0].Servers...)
	}
	for _, f := range st.Frontends {
		text, bad := frontendText(f)
		// Parse with a stand-in backend so that a reference to a backend of
		// the files or of the API validates in the merged check below.
		c, err := pc.parse(frontendKey(f.Name), text+"backend "+f.Backend+"\n", append(bad, backendNameProblem(f.Backend)...))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.Frontends = append(m.Frontends, c.Frontends...)
	}
	for _, x := range exposures {
		m.Frontends = append(m.Frontends, x.frontend)
		m.Backends = append(m.Backends, x.backend)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func backendNameProblem(name string) []string {
	if name == "" {
		return []string{"backend: required"}
	}
	return nil
}

// namespaceEntry validates an API namespace.
func validateNamespace(n api.Namespace) error {
	var bad []string
	if !hooks.ValidName(n.Name) {
		bad = append(bad, fmt.Sprintf("name %q: use [A-Za-z0-9._:-], at most 255 characters", n.Name))
	}
	if n.Path != "" && n.Pid != 0 {
		bad = append(bad, "give path or pid, not both")
	}
	if n.Path != "" && (!path.IsAbs(n.Path) || path.Clean(n.Path) != n.Path) {
		bad = append(bad, fmt.Sprintf("path %q: must be absolute and clean", n.Path))
	}
	if n.Pid < 0 {
		bad = append(bad, fmt.Sprintf("pid %d: must be positive", n.Pid))
	}
	if len(bad) > 0 {
		return detailsError("namespace "+n.Name, bad)
	}
	return nil
}
