package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
)

// Load reads the files in order and merges them into one Config, like
// "nsproxy run -f a.cfg -f b.cfg". As in HAProxy, the files behave as if
// concatenated: sections of later files add to earlier ones, and the last
// defaults section of a file still applies to the proxies of the next file
// until another defaults section starts. Every file starts outside any
// section. A name defined in two files is an error naming both places.
// The merged Config is validated before it is returned.
func Load(paths ...string) (*Config, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w; pass at least one path", ErrNoFiles)
	}
	p := newParser()
	readFailed := false
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("read config: %w", err))
			readFailed = true
			continue
		}
		p.parseFile(path, src)
	}
	if readFailed {
		// Cross references into a file we could not read would only add noise.
		return nil, errors.Join(p.errs...)
	}
	return p.finish()
}

// Parse parses the content of one configuration file and validates it.
// name is the file name used in error positions.
func Parse(name string, src []byte) (*Config, error) {
	p := newParser()
	p.parseFile(name, src)
	return p.finish()
}

// section is the kind of section a line belongs to.
type section int

const (
	secNone section = iota // before the first section of a file
	secGlobal
	secDefaults
	secNamespaceList
	secFrontend
	secBackend
	secListen
	secUnsupported // a HAProxy section nsproxy does not implement
)

var sectionKeywords = map[string]section{
	"global":         secGlobal,
	"defaults":       secDefaults,
	"namespace_list": secNamespaceList,
	"frontend":       secFrontend,
	"backend":        secBackend,
	"listen":         secListen,
}

// unsupportedSections are HAProxy sections nsproxy does not implement. Their
// header is reported once; their lines are not examined.
var unsupportedSections = map[string]bool{
	"resolvers": true, "peers": true, "userlist": true, "program": true,
	"mailers": true, "cache": true, "ring": true, "http-errors": true,
	"log-forward": true, "crt-store": true, "traces": true, "acme": true,
	"fcgi-app": true,
}

// keywords lists, in the order shown in error messages, the keywords each
// section accepts.
var keywords = map[section][]string{
	secGlobal:        {"maxconn", "nbthread", "tune.proxy-header-max-size"},
	secNamespaceList: {"namespace"},
	secDefaults:      {"mode", "balance", "timeout", "maxconn", "source", "default-server", "option"},
	secFrontend:      {"mode", "bind", "default_backend", "maxconn", "timeout", "option", "trusted-proxies"},
	secBackend:       {"mode", "balance", "timeout", "server", "source", "default-server"},
	secListen:        {"mode", "bind", "default_backend", "maxconn", "timeout", "option", "trusted-proxies", "balance", "server", "source", "default-server"},
}

var timeoutKinds = []string{"client", "client-fin", "connect", "server", "server-fin", "check", "proxy-header"}

// options lists the supported "option" keywords.
var options = []string{"lenient-netns-tlv"}

const serverOptionList = "check, inter, rise, fall, weight, backup, disabled, send-proxy, send-proxy-v2, namespace"

// BuiltinDefaults are the values every proxy starts from: the one place
// defaults live. A defaults section starts again from them.
func BuiltinDefaults() Defaults {
	return Defaults{
		Backend: Backend{Balance: BalanceRoundRobin},
		Server:  Server{Inter: 2 * time.Second, Rise: 2, Fall: 3, Weight: 1},
	}
}

type parser struct {
	cfg       *Config
	lookupEnv func(string) (string, bool)
	errs      []error
	pos       Pos // of the current line
	defs      Defaults

	// The current section. front, back and server point to what the
	// section's keywords change (in a defaults section: p.defs), and are nil
	// where a keyword does not apply; keywords[sec] guarantees the pointer a
	// keyword needs is set.
	sec    section
	where  string // the section for messages: `backend "b1"`
	front  *Frontend
	back   *Backend
	server *Server

	// incomplete holds the frontends of which a bind or default_backend line
	// was rejected, so validation does not also complain that it is missing.
	incomplete map[*Frontend]bool
}

func newParser() *parser {
	return &parser{
		cfg:        &Config{},
		lookupEnv:  osLookupEnv,
		defs:       BuiltinDefaults(),
		incomplete: map[*Frontend]bool{},
	}
}

func (p *parser) errorf(kind error, format string, args ...any) {
	p.errs = append(p.errs, newError(p.pos, kind, format, args...))
}

// report adds a value problem, prefixed with what it is about.
func (p *parser) report(pr *problem, format string, args ...any) {
	p.errorf(pr.kind, "%s: %s", fmt.Sprintf(format, args...), pr.msg)
}

// reportErr is report for the error of an exported value parser.
func (p *parser) reportErr(err error, format string, args ...any) {
	var pr *problem
	if errors.As(err, &pr) {
		p.report(pr, format, args...)
		return
	}
	p.errorf(ErrInvalid, "%s: %v", fmt.Sprintf(format, args...), err)
}

func (p *parser) finish() (*Config, error) {
	p.cfg.Defaults = p.defs
	errs := append(p.errs, p.cfg.check(p.incomplete)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p.cfg, nil
}

func (p *parser) parseFile(name string, src []byte) {
	p.openSection(secNone, nil, false)
	// A UTF-8 byte order mark (what some Windows editors write) is skipped,
	// as editors do: else the first section header is an unknown keyword
	// and every line of its section "outside any section".
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	for i, line := range strings.Split(string(src), "\n") {
		p.pos = Pos{File: name, Line: i + 1}
		words, msg := splitLine(line, p.lookupEnv)
		if msg != "" {
			p.errorf(ErrSyntax, "%s", msg)
			// Lines after a broken section header still belong to that
			// section: check them, but keep the section out of the Config.
			if f := strings.Fields(line); len(f) > 0 {
				if s, ok := sectionKeywords[f[0]]; ok {
					p.openSection(s, f[:1], false)
				}
			}
			continue
		}
		if len(words) == 0 {
			continue
		}
		if s, ok := sectionKeywords[words[0]]; ok {
			p.openSection(s, words, true)
			continue
		}
		if unsupportedSections[words[0]] {
			p.errorf(ErrUnsupported, "section %q is not supported; remove it (supported sections: global, defaults, namespace_list, frontend, backend, listen)", words[0])
			p.openSection(secUnsupported, nil, false)
			continue
		}
		p.keyword(words)
	}
}

// openSection starts a section. With check false the header was already
// reported as broken (or there is none): no more errors about it, and a
// frontend or backend is parsed but not added to the Config.
func (p *parser) openSection(s section, words []string, check bool) {
	p.sec, p.where = s, ""
	p.front, p.back, p.server = nil, nil, nil
	if len(words) > 0 {
		p.where = words[0]
	}
	switch s {
	case secGlobal, secNamespaceList:
		if check && len(words) > 1 {
			p.errorf(ErrSyntax, "%s takes no argument; remove %q", words[0], words[1])
		}
	case secDefaults:
		// HAProxy: a defaults section replaces the previous one entirely.
		p.defs = BuiltinDefaults()
		p.front, p.back, p.server = &p.defs.Frontend, &p.defs.Backend, &p.defs.Server
		if !check || len(words) < 2 {
			break
		}
		if len(words) > 2 {
			p.errorf(ErrSyntax, "unexpected %q after defaults %q; write: defaults [NAME]", words[2], words[1])
		}
		if !validName(words[1]) {
			p.errorf(ErrInvalid, "invalid defaults name %q; %s", words[1], nameRule)
		}
		p.where = fmt.Sprintf("defaults %q", words[1])
	case secFrontend, secBackend, secListen:
		p.openProxy(s, words, check)
	}
}

func (p *parser) openProxy(s section, words []string, check bool) {
	kw, name, attach := words[0], "", check
	switch {
	case !check:
	case len(words) < 2:
		p.errorf(ErrSyntax, "%s needs a name; write: %s NAME", kw, kw)
		attach = false
	default:
		name = words[1]
		if !validName(name) {
			p.errorf(ErrInvalid, "invalid %s name %q; %s", kw, name, nameRule)
			attach = false
		}
		if len(words) > 2 {
			p.errorf(ErrSyntax, "unexpected %q after %s %q; write: %s NAME", words[2], kw, name, kw)
		}
	}
	p.where = fmt.Sprintf("%s %q", kw, name)
	if s != secBackend {
		f := p.defs.Frontend
		f.Name, f.Pos, f.Listen = name, p.pos, s == secListen
		if f.Listen {
			f.DefaultBackend = name
		}
		p.front = &f
		if attach {
			p.cfg.Frontends = append(p.cfg.Frontends, p.front)
		}
	}
	if s != secFrontend {
		b := p.defs.Backend
		b.Name, b.Pos, b.Listen = name, p.pos, s == secListen
		b.DefaultServer = p.defs.Server
		p.back, p.server = &b, &b.DefaultServer
		if attach {
			p.cfg.Backends = append(p.cfg.Backends, p.back)
		}
	}
}

func (p *parser) keyword(words []string) {
	kw, args := words[0], words[1:]
	switch p.sec {
	case secNone:
		p.errorf(ErrSyntax, "keyword %q outside any section; start a section first: global, defaults, namespace_list, frontend, backend or listen", kw)
		return
	case secUnsupported:
		return
	}
	if !slices.Contains(keywords[p.sec], kw) {
		if kw == "use_backend" && p.front != nil && p.sec != secDefaults {
			p.errorf(ErrUnsupported, "use_backend in %s is not supported yet; route with default_backend", p.where)
			return
		}
		p.errorf(ErrSyntax, "unknown keyword %q in %s; supported: %s", kw, p.where, strings.Join(keywords[p.sec], ", "))
		return
	}
	switch kw {
	case "maxconn":
		p.maxconn(args)
	case "nbthread":
		p.nbthread(args)
	case "tune.proxy-header-max-size":
		p.proxyHeaderMaxSize(args)
	case "option":
		p.option(args)
	case "trusted-proxies":
		p.trustedProxies(args)
	case "namespace":
		p.namespaceEntry(args)
	case "mode":
		p.mode(args)
	case "balance":
		p.balance(args)
	case "timeout":
		p.timeout(args)
	case "source":
		p.source(args)
	case "default-server":
		p.serverOptions(p.server, args, "default-server in "+p.where)
	case "bind":
		p.bind(args)
	case "default_backend":
		p.defaultBackend(args)
	case "server":
		p.serverLine(args)
	}
}

// argc reports whether a keyword got exactly n arguments, and reports an
// error showing usage otherwise.
func (p *parser) argc(args []string, n int, usage string) bool {
	if len(args) == n {
		return true
	}
	kw, _, _ := strings.Cut(usage, " ")
	p.errorf(ErrSyntax, "%s in %s takes %d argument(s), got %d; write: %s", kw, p.where, n, len(args), usage)
	return false
}

func (p *parser) maxconn(args []string) {
	if !p.argc(args, 1, "maxconn N") {
		return
	}
	n, ok := parseCount(args[0], 1, math.MaxInt32)
	if !ok {
		p.errorf(ErrInvalid, "invalid maxconn %q in %s; write a whole number from 1 to 2147483647", args[0], p.where)
		return
	}
	if p.sec == secGlobal {
		p.cfg.Global.MaxConn = n
	} else {
		p.front.MaxConn = n
	}
}

// nbthreadMax bounds nbthread: more loops than this is a typo, not a host.
const nbthreadMax = 1024

func (p *parser) nbthread(args []string) {
	if !p.argc(args, 1, "nbthread N") {
		return
	}
	n, ok := parseCount(args[0], 1, nbthreadMax)
	if !ok {
		p.errorf(ErrInvalid, "invalid nbthread %q in global; write a whole number of threads from 1 to %d (leave it out for one per CPU)", args[0], nbthreadMax)
		return
	}
	p.cfg.Global.NbThread = n
}

// proxyHeaderMaxSize: 16 bytes is the smallest v2 header, 65551 the largest.
func (p *parser) proxyHeaderMaxSize(args []string) {
	if !p.argc(args, 1, "tune.proxy-header-max-size BYTES") {
		return
	}
	n, ok := parseCount(args[0], 16, 65551)
	if !ok {
		p.errorf(ErrInvalid, "invalid tune.proxy-header-max-size %q; write a number of bytes from 16 to 65551", args[0])
		return
	}
	p.cfg.Global.ProxyHeaderMaxSize = n
}

func (p *parser) option(args []string) {
	if !p.argc(args, 1, "option NAME") {
		return
	}
	switch args[0] {
	case "lenient-netns-tlv":
		p.front.LenientNetnsTLV = true
	default:
		p.errorf(ErrUnsupported, "unsupported option %q in %s; supported: %s", args[0], p.where, strings.Join(options, ", "))
	}
}

func (p *parser) trustedProxies(args []string) {
	if len(args) == 0 {
		p.errorf(ErrSyntax, "trusted-proxies in %s needs at least one network; write: trusted-proxies CIDR [CIDR ...]", p.where)
		return
	}
	for _, a := range args {
		pf, err := ParseTrustedProxy(a)
		if err != nil {
			p.reportErr(err, "trusted-proxies of %s", p.where)
			continue
		}
		p.front.TrustedProxies = append(p.front.TrustedProxies, pf)
	}
}

func (p *parser) namespaceEntry(args []string) {
	if !p.argc(args, 1, "namespace NAME") {
		return
	}
	if !hooks.ValidName(args[0]) {
		p.errorf(ErrInvalid, "invalid namespace name %q in namespace_list; %s", args[0], hooks.NameRule)
		return
	}
	// Duplicates, also across files, are found by check.
	p.cfg.Namespaces = append(p.cfg.Namespaces, NamespaceRef{Name: args[0], Pos: p.pos})
}

func (p *parser) mode(args []string) {
	if p.argc(args, 1, "mode tcp") && args[0] != "tcp" {
		p.errorf(ErrUnsupported, "mode %q in %s: only mode tcp is supported; write mode tcp or remove the line", args[0], p.where)
	}
}

func (p *parser) balance(args []string) {
	if !p.argc(args, 1, "balance roundrobin|leastconn|source|first") {
		return
	}
	b, err := ParseBalance(args[0])
	if err != nil {
		p.reportErr(err, "balance in %s", p.where)
		return
	}
	p.back.Balance = b
}

func (p *parser) timeout(args []string) {
	if !p.argc(args, 2, "timeout KIND DURATION") {
		return
	}
	kind := args[0]
	if !slices.Contains(timeoutKinds, kind) {
		p.errorf(ErrUnsupported, "unsupported timeout %q in %s; supported: %s", kind, p.where, strings.Join(timeoutKinds, ", "))
		return
	}
	var target *time.Duration
	belongs := "backend"
	switch {
	case p.front != nil && kind == "client":
		target = &p.front.ClientTimeout
	case p.front != nil && kind == "client-fin":
		target = &p.front.ClientFinTimeout
	case p.front != nil && kind == "proxy-header":
		target = &p.front.ProxyHeaderTimeout
	case p.back != nil && kind == "connect":
		target = &p.back.ConnectTimeout
	case p.back != nil && kind == "server":
		target = &p.back.ServerTimeout
	case p.back != nil && kind == "server-fin":
		target = &p.back.ServerFinTimeout
	case p.back != nil && kind == "check":
		target = &p.back.CheckTimeout
	case strings.HasPrefix(kind, "client"), kind == "proxy-header":
		belongs = "frontend"
	}
	if target == nil {
		// HAProxy only warns; a timeout that silently does nothing is a trap.
		p.errorf(ErrSyntax, "timeout %s does not apply to %s; move it to a %s, listen or defaults section", kind, p.where, belongs)
		return
	}
	d, msg := parseDuration(args[1])
	if msg != "" {
		p.errorf(ErrInvalid, "timeout %s in %s: %s", kind, p.where, msg)
		return
	}
	*target = d
}

func (p *parser) source(args []string) {
	if len(args) == 0 {
		p.argc(args, 1, "source ADDR [usesrc clientip]")
		return
	}
	useSrc := false
	switch rest := args[1:]; {
	case len(rest) == 0:
	case rest[0] != "usesrc":
		p.errorf(ErrUnsupported, "unsupported source option %q in %s; supported: usesrc clientip", rest[0], p.where)
		return
	case len(rest) != 2 || rest[1] != "clientip":
		p.errorf(ErrUnsupported, "%q in %s is not supported; only usesrc clientip is, as in: source 0.0.0.0 usesrc clientip", strings.Join(rest, " "), p.where)
		return
	default:
		useSrc = true
	}
	addr, err := ParseSource(args[0], useSrc)
	if err != nil {
		p.reportErr(err, "source in %s", p.where)
		return
	}
	p.back.Source, p.back.UseSrcClientIP = addr, useSrc
}

func (p *parser) bind(args []string) {
	if len(args) == 0 {
		p.argc(args, 1, "bind ADDR:PORT [namespace NAME] [accept-proxy] [v4v6|v6only]")
		p.incomplete[p.front] = true
		return
	}
	ok := true
	pa, pr := parseAddr(args[0], bindAddr)
	if pr != nil {
		p.report(pr, "bind in %s", p.where)
		ok = false
	}
	b := Bind{Pos: p.pos, Addr: netip.AddrPortFrom(pa.addr, pa.port)}
options:
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "accept-proxy":
			b.AcceptProxy = true
		case "v4v6":
			b.V4V6 = true
		case "v6only":
			b.V6Only = true
		case "namespace":
			if i+1 == len(args) {
				p.errorf(ErrSyntax, "bind option namespace in %s needs a value; write: namespace NAME", p.where)
				ok = false
				break options
			}
			i++
			name, err := ParseBindNamespace(args[i])
			if err != nil {
				p.reportErr(err, "bind in %s", p.where)
				ok = false
				break
			}
			b.Namespace = name
		default:
			// What follows may be the option's arguments: stop here.
			p.errorf(ErrUnsupported, "unsupported bind option %q in %s; supported: namespace, accept-proxy, v4v6, v6only", args[i], p.where)
			ok = false
			break options
		}
	}
	if pr == nil || (b.V4V6 && b.V6Only) {
		if err := CheckBindFamily(b); err != nil {
			p.reportErr(err, "bind in %s", p.where)
			ok = false
		}
	}
	if !ok {
		p.incomplete[p.front] = true
		return
	}
	p.front.Binds = append(p.front.Binds, b)
}

func (p *parser) defaultBackend(args []string) {
	if !p.argc(args, 1, "default_backend NAME") {
		p.incomplete[p.front] = true
		return
	}
	if !validName(args[0]) {
		p.errorf(ErrInvalid, "invalid default_backend name %q in %s; %s", args[0], p.where, nameRule)
		p.incomplete[p.front] = true
		return
	}
	p.front.DefaultBackend = args[0]
}

func (p *parser) serverLine(args []string) {
	if len(args) < 2 {
		p.errorf(ErrSyntax, "server in %s needs a name and an address; write: server NAME ADDR[:PORT] [options]", p.where)
		return
	}
	name, ok := args[0], true
	if !validName(name) {
		p.errorf(ErrInvalid, "invalid server name %q in %s; %s", name, p.where, nameRule)
		ok = false
	}
	what := fmt.Sprintf("server %q in %s", name, p.where)
	pa, pr := parseAddr(args[1], serverAddr)
	if pr != nil {
		p.report(pr, "%s", what)
		ok = false
	}
	s := *p.server // default-server options, then the server's own
	s.Name, s.Pos = name, p.pos
	s.Addr, s.PortMode, s.Port, s.PortOffset = pa.addr, pa.mode, pa.port, pa.offset
	if !p.serverOptions(&s, args[2:], what) || !ok {
		return
	}
	p.back.Servers = append(p.back.Servers, &s)
}

// serverOptions applies the options of a server or default-server line to s
// and reports whether they were all valid.
func (p *parser) serverOptions(s *Server, opts []string, what string) bool {
	ok := true
	for i := 0; i < len(opts); i++ {
		opt := opts[i]
		switch opt {
		case "check":
			s.Check = true
			continue
		case "backup":
			s.Backup = true
			continue
		case "disabled":
			s.Disabled = true
			continue
		case "send-proxy":
			s.SendProxy = 1
			continue
		case "send-proxy-v2":
			s.SendProxy = 2
			continue
		case "namespace", "inter", "rise", "fall", "weight":
		default:
			// What follows may be the option's arguments: stop here.
			p.errorf(ErrUnsupported, "unsupported option %q on %s; supported: %s", opt, what, serverOptionList)
			return false
		}
		if i+1 == len(opts) {
			p.errorf(ErrSyntax, "option %s on %s needs a value; write: %s VALUE", opt, what, opt)
			return false
		}
		i++
		v := opts[i]
		switch opt {
		case "namespace":
			name, client, err := ParseServerNamespace(v)
			if err != nil {
				p.reportErr(err, "%s", what)
				ok = false
				break
			}
			s.Namespace, s.ClientNamespace = name, client
		case "inter":
			d, msg := parseDuration(v)
			if msg != "" {
				p.errorf(ErrInvalid, "inter on %s: %s", what, msg)
				ok = false
				break
			}
			s.Inter = d
		case "rise", "fall":
			n, good := parseCount(v, 1, math.MaxInt32)
			if !good {
				p.errorf(ErrInvalid, "invalid %s %q on %s; write a whole number from 1 to 2147483647", opt, v, what)
				ok = false
				break
			}
			if opt == "rise" {
				s.Rise = n
			} else {
				s.Fall = n
			}
		case "weight":
			n, good := parseCount(v, 0, 256)
			if !good {
				p.errorf(ErrInvalid, "invalid weight %q on %s; write a whole number from 0 to 256", v, what)
				ok = false
				break
			}
			s.Weight = n
		}
	}
	return ok
}
