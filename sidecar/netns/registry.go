package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsproxy/nsproxy/hooks"
	"github.com/nsproxy/nsproxy/internal/dirwatch"
)

var (
	// ErrUnknownNamespace: the name is not one the registry was told about.
	ErrUnknownNamespace = errors.New("nsproxy: unknown namespace")
	// ErrUnavailable: the namespace is known but does not exist right now.
	ErrUnavailable = errors.New("nsproxy: namespace not available")
	// ErrInvalidName: names are [A-Za-z0-9._:-]{1,255}, never paths.
	ErrInvalidName = errors.New("nsproxy: invalid namespace name")
)

// DefaultDir is where `ip netns` keeps named namespaces.
const DefaultDir = "/var/run/netns"

// Registry keeps every namespace the daemon may use open by name, and
// notices namespaces appearing, disappearing and being recreated. Users
// never cache a Handle beyond its Context: when a namespace goes away its
// handle is closed and a new one (if any) is published under the same name.
type Registry struct {
	dir string
	// realDir is dir with its symbolic links resolved (/var/run/netns is
	// /run/netns): a path under either is an entry of the directory.
	realDir string
	log     *slog.Logger
	def     *Handle

	mu    sync.Mutex
	slots map[string]*slot
	// slotsPeak is the most slots since the map was made: a Go map keeps
	// its largest table, so after a node's containers left it is made
	// anew (shrinkLocked).
	slotsPeak int
	allowed   map[string]bool
	// aliases are, per entry of the netns directory, the names whose path
	// is that entry although the name is another (a CNI attachment named
	// after its container): what an inotify event of the entry concerns
	// besides the slot of the entry's own name. Paths outside the
	// directory are not here: inotify does not see them.
	aliases map[string][]string
	// outside are the names whose path is outside the directory: the
	// watcher looks at each of them every period.
	outside map[string]struct{}
}

type slot struct {
	h       *Handle       // nil while the namespace does not exist
	changed chan struct{} // closed and replaced whenever h changes
	missing bool          // already reported missing
	openErr string        // last "present but cannot be opened" reported
	config  bool          // named by the configuration files
	entry   *Entry        // registered at run time (API, CNI, OCI)
	// file is the entry of the netns directory the namespace is opened
	// from ("" for a path elsewhere, which inotify does not see), worked
	// out when the entry is set (setEntryLocked): path's directory with
	// its links resolved, so that /var/run/netns/x is /run/netns's x.
	file string
}

// owner is the slot's tenant: its run-time entry's, else the default
// tenant (the files' names).
func (s *slot) owner() string {
	if s.entry != nil {
		return tenantOr(s.entry.Tenant)
	}
	return DefaultTenant
}

// unpublishLocked takes the slot's handle away (waiters see the change)
// and returns it for the caller to close outside the lock.
func (r *Registry) unpublishLocked(s *slot) *Handle {
	h := s.h
	s.h = nil
	close(s.changed)
	s.changed = make(chan struct{})
	return h
}

// path is the file the slot's namespace is opened from; "" for a
// waiting entry, opened from nowhere.
func (s *slot) path(dir, name string) string {
	if s.entry != nil && s.entry.Waiting {
		return ""
	}
	if s.entry != nil && s.entry.Path != "" {
		return s.entry.Path
	}
	return filepath.Join(dir, name)
}

// Entry is a namespace registered at run time rather than named by the
// configuration files.
type Entry struct {
	Name string
	// Path of the namespace file; "" means Name in the netns directory.
	Path   string
	Source string // api, cni, oci
	Tenant string
	// Allowed puts the namespace on the allowlist (PROXY NETNS TLV,
	// "namespace *").
	Allowed bool
	// Waiting keeps the name known and Tenant's while no namespace holds
	// it (a tenant's objects name its container, which is not running):
	// listeners and servers wait on it, nothing is opened, not even the
	// netns directory's file of that name, until an entry with a path
	// replaces it.
	Waiting  bool
	Metadata map[string]string
}

// EntryStatus describes one registry name.
type EntryStatus struct {
	Entry
	Config    bool // named by the configuration files
	Allowed   bool // on the allowlist, by namespace_list or registration
	Available bool
	Identity  Identity
}

// NewRegistry opens the default namespace and prepares a registry for the
// named namespaces in dir ("" means DefaultDir).
func NewRegistry(dir string, log *slog.Logger) (*Registry, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if log == nil {
		log = slog.Default()
	}
	def, err := OpenDefault()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	return &Registry{dir: dir, realDir: resolveDir(dir), log: log, def: def, slots: map[string]*slot{},
		aliases: map[string][]string{}, outside: map[string]struct{}{}}, nil
}

// resolveDir is dir with its symbolic links resolved, as far as it exists
// (the netns directory is made at the first `ip netns add`).
func resolveDir(dir string) string {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		return d
	}
	if p, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		return filepath.Join(p, filepath.Base(dir))
	}
	return dir
}

// fileOf is the entry of the netns directory that name's namespace is
// opened from, "" when its path is elsewhere.
func (r *Registry) fileOf(name string, s *slot) string {
	if s.entry == nil || s.entry.Path == "" {
		return name
	}
	return s.file
}

// fileOfPath is the entry of the netns directory that path is, "" when it
// is elsewhere. Its directory's links are resolved: containerd's
// /var/run/netns/cni-... is an entry of /run/netns.
func (r *Registry) fileOfPath(path string) string {
	d := filepath.Dir(filepath.Clean(path))
	if d == r.dir || d == r.realDir {
		return filepath.Base(path)
	}
	if rd, err := filepath.EvalSymlinks(d); err == nil && (rd == r.dir || rd == r.realDir) {
		return filepath.Base(path)
	}
	return ""
}

// setEntryLocked gives slot name its run-time entry (nil: none) and keeps
// the aliases and the outside names in step with the path that comes
// with it.
func (r *Registry) setEntryLocked(name string, s *slot, e *Entry) {
	r.unaliasLocked(name, s)
	s.entry = e
	s.file = ""
	if e != nil && e.Path != "" {
		s.file = r.fileOfPath(e.Path)
	}
	switch f := r.fileOf(name, s); {
	case f == "":
		r.outside[name] = struct{}{}
	case f != name:
		r.aliases[f] = append(r.aliases[f], name)
	}
}

// unaliasLocked removes name from the aliases of its slot's path, or from
// the outside names.
func (r *Registry) unaliasLocked(name string, s *slot) {
	f := r.fileOf(name, s)
	if f == "" {
		delete(r.outside, name)
		return
	}
	if f == name {
		return
	}
	if l := slices.DeleteFunc(r.aliases[f], func(n string) bool { return n == name }); len(l) > 0 {
		r.aliases[f] = l
	} else {
		delete(r.aliases, f)
	}
}

// outsideNames are the names whose path inotify does not see.
func (r *Registry) outsideNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.outside))
	for n := range r.outside {
		out = append(out, n)
	}
	return out
}

// namesOfFile are the names whose namespace is opened from entry file of
// the netns directory.
func (r *Registry) namesOfFile(file string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.aliases[file])
	if s, ok := r.slots[file]; ok && r.fileOf(file, s) == file {
		out = append(out, file)
	}
	return out
}

// Dir is the directory of named namespaces.
func (r *Registry) Dir() string { return r.dir }

// Default is the namespace the daemon started in.
func (r *Registry) Default() *Handle { return r.def }

// SetNames makes names the set of namespaces kept open: new names are opened
// if they exist, names no longer wanted are closed. Names that are wanted
// before and after keep their handle, so nothing in them is disturbed; only
// the new names are looked at, so that a change costs what it changes, not
// what is registered (Resync and the watcher look at the others).
func (r *Registry) SetNames(names []string) error {
	var errs []error
	var added []string
	r.mu.Lock()
	want := map[string]bool{}
	for _, n := range names {
		if !hooks.ValidName(n) {
			errs = append(errs, fmt.Errorf("%w: %q", ErrInvalidName, n))
			continue
		}
		want[n] = true
		s := r.slotLocked(n)
		if !s.config {
			added = append(added, n)
		}
		s.config = true
		if s.entry != nil && s.path(r.dir, n) != filepath.Join(r.dir, n) {
			// The files' name means the file: a run-time entry never
			// repoints it, not even one registered before the files
			// named it.
			r.log.Warn("run-time namespace dropped: the configuration files name it", "netns", n,
				"source", s.entry.Source, "path", s.entry.Path)
			r.setEntryLocked(n, s, nil)
		}
	}
	var drop []*Handle
	for n, s := range r.slots {
		if !want[n] {
			s.config = false
		}
		if h := r.dropIfUnusedLocked(n, s); h != nil {
			drop = append(drop, h)
		}
	}
	r.shrinkLocked()
	r.mu.Unlock()
	r.closeDropped(drop)
	for _, n := range added {
		r.resyncOne(n)
	}
	return errors.Join(errs...)
}

func (r *Registry) slotLocked(name string) *slot {
	s, ok := r.slots[name]
	if !ok {
		s = &slot{changed: make(chan struct{})}
		r.slots[name] = s
		r.slotsPeak = max(r.slotsPeak, len(r.slots))
	}
	return s
}

// shrinkLocked makes the slots map anew once it holds a quarter of its
// peak (at least 256), so that its table goes with the names that left.
func (r *Registry) shrinkLocked() {
	if r.slotsPeak < 256 || len(r.slots) > r.slotsPeak/4 {
		return
	}
	m := make(map[string]*slot, len(r.slots))
	maps.Copy(m, r.slots)
	r.slots, r.slotsPeak = m, len(m)
	a := make(map[string][]string, len(r.aliases))
	maps.Copy(a, r.aliases)
	r.aliases = a
	o := make(map[string]struct{}, len(r.outside))
	maps.Copy(o, r.outside)
	r.outside = o
}

// dropIfUnusedLocked removes a slot nothing wants any more and returns its
// handle for the caller to close outside the lock.
func (r *Registry) dropIfUnusedLocked(name string, s *slot) *Handle {
	if s.config || s.entry != nil {
		return nil
	}
	close(s.changed)
	r.unaliasLocked(name, s)
	delete(r.slots, name)
	return s.h
}

func (r *Registry) closeDropped(hs []*Handle) {
	for _, h := range hs {
		if h != nil {
			r.log.Info("namespace no longer used, closing", "netns", h.Name())
			h.Close()
		}
	}
}

// ErrConflict: a registration would change a namespace another owner has.
var ErrConflict = errors.New("nsproxy: namespace registered with another path")

// Register adds or updates a run-time namespace. It returns without
// waiting for the namespace to exist. A name the configuration files use
// means the file of that name in the netns directory: registering it with
// another path is ErrConflict and changes nothing. Registering a run-time
// name again with another path or another tenant replaces the handle: the
// old one closes (its Context ends), and with it everything opened in the
// namespace under the old owner.
func (r *Registry) Register(e Entry) error {
	if !hooks.ValidName(e.Name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, e.Name)
	}
	if e.Path != "" && !filepath.IsAbs(e.Path) {
		return fmt.Errorf("namespace %q: path %q must be absolute", e.Name, e.Path)
	}
	r.mu.Lock()
	if s, ok := r.slots[e.Name]; ok && s.config && e.Path != "" && e.Path != filepath.Join(r.dir, e.Name) {
		r.mu.Unlock()
		return fmt.Errorf("namespace %q is named by the configuration files, %s is another path: %w", e.Name, e.Path, ErrConflict)
	}
	s := r.slotLocked(e.Name)
	var drop *Handle
	if s.h != nil && (s.path(r.dir, e.Name) != (&slot{entry: &e}).path(r.dir, e.Name) || s.owner() != tenantOr(e.Tenant)) {
		// Another namespace, or the same one of another tenant: what the
		// old owner runs in it (listeners, sessions a TLV selected) must
		// not go on under the new one, so the handle closes and a new
		// one is opened.
		if s.owner() != tenantOr(e.Tenant) {
			r.log.Warn("namespace changed tenant: closing everything of the old tenant in it", "netns", e.Name,
				"old", s.owner(), "new", tenantOr(e.Tenant))
		}
		drop = r.unpublishLocked(s)
	}
	cp := e
	cp.Metadata = maps.Clone(e.Metadata)
	r.setEntryLocked(e.Name, s, &cp)
	r.mu.Unlock()
	if drop != nil {
		drop.Close()
	}
	r.resyncOne(e.Name)
	return nil
}

// Unregister removes a run-time namespace; its handle closes unless the
// configuration still names it. It reports whether it was registered.
func (r *Registry) Unregister(name string) bool {
	r.mu.Lock()
	s, ok := r.slots[name]
	if !ok || s.entry == nil {
		r.mu.Unlock()
		return false
	}
	wasOwner := s.owner()
	r.setEntryLocked(name, s, nil)
	h := r.dropIfUnusedLocked(name, s)
	r.shrinkLocked()
	if h == nil && s.h != nil && wasOwner != DefaultTenant {
		// The files still name it: it is the default tenant's now, and
		// nothing of its former tenant stays open in it.
		r.log.Warn("namespace back to the default tenant: closing everything of its tenant in it", "netns", name,
			"old", wasOwner)
		h = r.unpublishLocked(s)
	}
	r.mu.Unlock()
	r.closeDropped([]*Handle{h})
	if h == nil || s.config {
		r.resyncOne(name) // the path may have changed back to the netns directory
	}
	return true
}

// Status lists every name with its state and identity, sorted by name.
// A handle's first identity enters its namespace (the cookie): callers
// that count or look at the state only use Count or States.
func (r *Registry) Status() []EntryStatus { return r.status(true) }

// States is Status without the identities: it enters no namespace.
func (r *Registry) States() []EntryStatus { return r.status(false) }

func (r *Registry) status(identities bool) []EntryStatus {
	r.mu.Lock()
	out := make([]EntryStatus, 0, len(r.slots))
	hs := make([]*Handle, 0, len(r.slots))
	for n, s := range r.slots {
		st := EntryStatus{Entry: Entry{Name: n, Path: s.path(r.dir, n), Source: "config"}, Config: s.config,
			Allowed: r.allowed[n] || (s.entry != nil && s.entry.Allowed)}
		if s.entry != nil {
			st.Entry = *s.entry
			st.Path = s.path(r.dir, n)
			st.Metadata = maps.Clone(s.entry.Metadata)
		}
		st.Available = s.h != nil
		out = append(out, st)
		hs = append(hs, s.h)
	}
	r.mu.Unlock()
	// Outside the lock: a handle's first Identity enters its namespace
	// for the cookie.
	for i, h := range hs {
		if h != nil && identities {
			out[i].Identity = h.Identity()
		}
	}
	slices.SortFunc(out, func(a, b EntryStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetAllowed replaces the allowlist: the names a client may select through
// a PROXY NETNS TLV (and so reach with "namespace *" servers). Names on it
// should also be given to SetNames, or they can never be opened.
func (r *Registry) SetAllowed(names []string) {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	r.mu.Lock()
	r.allowed = m
	r.mu.Unlock()
}

// DefaultTenant owns the configuration files' namespace_list and every
// registration that names no tenant.
const DefaultTenant = "default"

// Allowed reports whether a connection of tenant may select name: the
// namespace_list of the files is the default tenant's; a run-time entry
// belongs to its own tenant only.
func (r *Registry) Allowed(tenant, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.allowedLocked(tenantOr(tenant), name)
}

func tenantOr(t string) string {
	if t == "" {
		return DefaultTenant
	}
	return t
}

func (r *Registry) allowedLocked(tenant, name string) bool {
	if tenant == DefaultTenant && r.allowed[name] {
		return true
	}
	s, ok := r.slots[name]
	return ok && s.entry != nil && s.entry.Allowed && tenantOr(s.entry.Tenant) == tenant
}

// Names lists the names the registry keeps, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.slots {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Count is the number of names, without listing them.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots)
}

// Known reports whether name is one of the registry's names (the allowlist).
func (r *Registry) Known(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.slots[name]
	return ok
}

// Get returns the open handle of name; "" is the default namespace.
func (r *Registry) Get(name string) (*Handle, error) {
	if name == "" {
		return r.def, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.slots[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNamespace, name)
	}
	if s.h == nil {
		return nil, fmt.Errorf("%w: %q (no %s)", ErrUnavailable, name, s.path(r.dir, name))
	}
	return s.h, nil
}

// Wait returns the handle of name as soon as the namespace exists.
func (r *Registry) Wait(ctx context.Context, name string) (*Handle, error) {
	for {
		if name == "" {
			return r.def, nil
		}
		r.mu.Lock()
		s, ok := r.slots[name]
		if !ok {
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: %q", ErrUnknownNamespace, name)
		}
		h, ch := s.h, s.changed
		r.mu.Unlock()
		if h != nil && !h.Closed() {
			return h, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Resync compares every name with its file: it opens namespaces that
// appeared, and closes those deleted or replaced (opening the replacement).
func (r *Registry) Resync() {
	r.mu.Lock()
	names := make([]string, 0, len(r.slots))
	for n := range r.slots {
		names = append(names, n)
	}
	r.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		r.resyncOne(n)
	}
}

func (r *Registry) resyncOne(name string) {
	r.mu.Lock()
	s, ok := r.slots[name]
	if !ok {
		r.mu.Unlock()
		return
	}
	old := s.h
	path := s.path(r.dir, name)
	r.mu.Unlock()
	if path == "" {
		return // a waiting entry: nothing to open (Register closed what was)
	}

	if old != nil && old.Path() == path && !old.Stale() {
		return
	}
	var nh *Handle
	var openErr error
	if id, err := statIdentity(path); err == nil && (old == nil || id.Ino != old.id.Ino || id.Dev != old.id.Dev) {
		nh, openErr = OpenPath(path, name)
	}
	// A file that stays unopenable (another namespace type, say) is
	// reported once per error, not at every resync.
	r.mu.Lock()
	reportOpen := openErr != nil && s.openErr != openErr.Error()
	s.openErr = ""
	if openErr != nil {
		s.openErr = openErr.Error()
	}
	r.mu.Unlock()
	if reportOpen {
		r.log.Warn("namespace present but cannot be opened", "netns", name, "path", path, "err", openErr)
	}
	if old == nil && nh == nil {
		r.mu.Lock()
		report := !s.missing
		s.missing = true
		r.mu.Unlock()
		if report && openErr == nil {
			r.log.Warn("namespace does not exist yet; its listeners and servers start when it appears",
				"netns", name, "path", path)
		}
		return
	}

	r.mu.Lock()
	if cur, ok := r.slots[name]; !ok || cur != s || s.h != old {
		// Changed under us (SetNames or a concurrent resync): let it win.
		r.mu.Unlock()
		if nh != nil {
			nh.Close()
		}
		return
	}
	s.h = nh
	s.missing = nh == nil
	close(s.changed)
	s.changed = make(chan struct{})
	r.mu.Unlock()

	switch {
	case old != nil && nh != nil:
		r.log.Warn("namespace recreated: closing everything in the old one", "netns", name,
			"old", old.FileIdentity().String(), "new", nh.FileIdentity().String())
	case old != nil:
		r.log.Warn("namespace deleted: closing its listeners and connections", "netns", name,
			"identity", old.FileIdentity().String())
	default:
		r.log.Info("namespace available", "netns", name, "identity", nh.FileIdentity().String())
	}
	if old != nil {
		old.Close()
	}
}

// Close closes every handle, the default one included.
func (r *Registry) Close() {
	r.mu.Lock()
	var hs []*Handle
	for n, s := range r.slots {
		if s.h != nil {
			hs = append(hs, s.h)
		}
		close(s.changed)
		delete(r.slots, n)
	}
	clear(r.aliases)
	clear(r.outside)
	r.mu.Unlock()
	for _, h := range hs {
		h.Close()
	}
	r.def.Close()
}

// Watch keeps the registry in step with the netns directory until ctx ends.
// An inotify event resyncs the names whose file it names, now and a few
// more times with backoff; every period a sweep resyncs the next
// sweepBatch names, in turn, for what inotify misses (a path outside the
// directory such as /proc/PID/ns/net, a directory created late, a watch
// that failed or overflowed). Neither costs a syscall per registered name
// at every event or every second: with 5,000 containers that was most of
// the daemon's time. Nothing of it runs after Watch returns.
func (r *Registry) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	var w *dirwatch.Watcher
	var events <-chan struct{}
	warned := false
	watch := func() {
		var err error
		if w, err = watchDir(r.dir); w != nil {
			events = w.Events()
			if warned {
				r.log.Info("watching the netns directory again", "dir", r.dir)
			}
			warned = false
			return
		}
		events = nil
		if !warned {
			r.log.Warn("cannot watch the netns directory; resyncing every name every period until it can",
				"dir", r.dir, "every", every.String(), "err", err)
			warned = true
		}
	}
	watch()
	// What changed before the watch began made no event.
	r.Resync()
	if watchStartedHook != nil {
		watchStartedHook(r)
	}
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	var sw sweeper
	var rc rechecks
	defer rc.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if events == nil {
				// No watch (it failed, or the directory went, moved or was
				// unmounted and its watch ended with it): try again, and
				// look at everything it may have missed. While there is
				// none, every name is looked at every period, as before
				// the watcher named its entries.
				if w != nil {
					w.Stop()
					w = nil
				}
				watch()
				r.Resync()
				continue
			}
			// Paths outside the directory (/proc/PID/ns/net, another
			// runtime's directory) make no event here: each is looked at
			// every period, the others in turn by the sweep.
			for _, n := range r.outsideNames() {
				r.resyncOne(n)
			}
			sw.step(r, sweepBatch)
		case now := <-rc.c():
			rc.runDue(now)
		case _, ok := <-events:
			if !ok {
				events = nil
			}
			if resync := r.changed(w.Take()); resync != nil {
				resync()
				rc.add(time.Now(), resync)
			}
		}
	}
}

// watchStartedHook, set by tests, runs once Watch watches and resynced:
// a change after it makes an event.
var watchStartedHook func(*Registry)

// recheckAfter are the re-checks of a name an event named: `ip netns add`
// creates the file before bind-mounting the namespace on it, and the
// mount itself makes no inotify event. The last one is for a busy host:
// after it, only the sweep would notice a mount (with 5,000 names, within
// 50 s), where the full resync every second of old noticed it in 1 s.
var recheckAfter = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, time.Second,
	5 * time.Second}

// changed is the resync of what an inotify wake-up reported: of the names
// whose files it named, or of every name; nil when it named no file. The
// names are looked up at each run, not at the event: a name registered on
// the file between `ip netns add`'s create and its mount is re-checked too.
func (r *Registry) changed(ch dirwatch.Changes) func() {
	if ch.All {
		return r.Resync
	}
	if len(ch.Names) == 0 {
		return nil
	}
	files := ch.Names
	return func() {
		for _, f := range files {
			for _, n := range r.namesOfFile(f) {
				r.resyncOne(n) // a name gone since is skipped there
			}
		}
	}
}

// rechecks are the resyncs due at recheckAfter of the events that asked
// for them, run by Watch's loop.
type rechecks struct {
	due   []recheck
	timer *time.Timer // set for the earliest of due; nil when none
}

type recheck struct {
	at     time.Time
	resync func()
}

func (rc *rechecks) add(now time.Time, resync func()) {
	for _, d := range recheckAfter {
		rc.due = append(rc.due, recheck{now.Add(d), resync})
	}
	rc.arm(now)
}

// c fires when the earliest recheck is due; nil (never) when none is.
func (rc *rechecks) c() <-chan time.Time {
	if rc.timer == nil {
		return nil
	}
	return rc.timer.C
}

// runDue runs the rechecks due by now, in the order they were asked for.
func (rc *rechecks) runDue(now time.Time) {
	var run []func()
	rc.due = slices.DeleteFunc(rc.due, func(x recheck) bool {
		if x.at.After(now) {
			return false
		}
		run = append(run, x.resync)
		return true
	})
	for _, fn := range run {
		fn()
	}
	rc.arm(time.Now())
}

// arm sets the timer for the earliest recheck.
func (rc *rechecks) arm(now time.Time) {
	if len(rc.due) == 0 {
		rc.stop()
		return
	}
	first := slices.MinFunc(rc.due, func(a, b recheck) int { return a.at.Compare(b.at) }).at
	if rc.timer == nil {
		rc.timer = time.NewTimer(first.Sub(now))
	} else {
		rc.timer.Reset(first.Sub(now)) // Go ≥ 1.23: no stale value after Reset
	}
}

func (rc *rechecks) stop() {
	if rc.timer != nil {
		rc.timer.Stop()
		rc.timer = nil
	}
}

// sweepBatch is how many names a periodic sweep step resyncs: with the
// default 1 s period, 5,000 names are all looked at within 50 s, at 200
// statfs+stat pairs a second.
const sweepBatch = 100

// sweeper walks the registry's names a batch at a time. It lists them
// once per round, so a step costs its batch, not the registry's size.
type sweeper struct {
	names []string
	next  int
}

// step resyncs the next batch names, starting a new round when the last
// one is done. It returns how many it resynced.
func (sw *sweeper) step(r *Registry, batch int) int {
	if sw.next >= len(sw.names) {
		r.mu.Lock()
		sw.names = sw.names[:0]
		for n := range r.slots {
			sw.names = append(sw.names, n)
		}
		r.mu.Unlock()
		sw.next = 0
	}
	end := min(sw.next+batch, len(sw.names))
	for _, n := range sw.names[sw.next:end] {
		r.resyncOne(n) // a name gone since the round began is skipped there
	}
	done := end - sw.next
	sw.next = end
	return done
}

// exists reports whether path exists at all.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Exists reports whether path is a network namespace file now (an nsfs
// mount or /proc/PID/ns/net); CheckPath says why not.
func Exists(path string) bool {
	return CheckPath(path) == nil
}

// ErrOtherTenant: the namespace belongs to another tenant than the
// connection's frontend.
var ErrOtherTenant = errors.New("nsproxy: namespace belongs to another tenant")

// ownerLocked is the tenant of name: its run-time entry's, else the
// default tenant's (the files' names).
func (r *Registry) ownerLocked(name string) string {
	if s, ok := r.slots[name]; ok {
		return s.owner()
	}
	return DefaultTenant
}

// Admit decides whether a connection of tenant may select name through a
// PROXY NETNS TLV: nil, ErrOtherTenant (the name is another tenant's) or
// ErrNotAllowed (off the tenant's allowlist). The engine calls it for
// every TLV; it is the one place that decision is made.
func (r *Registry) Admit(tenant, name string) error {
	tenant = tenantOr(tenant)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.allowedLocked(tenant, name) {
		return nil
	}
	if _, known := r.slots[name]; known {
		if o := r.ownerLocked(name); o != tenant {
			return fmt.Errorf("%w: %q is tenant %s's, the frontend is tenant %s's", ErrOtherTenant, name, o, tenant)
		}
	}
	return fmt.Errorf("%w: %q", ErrNotAllowed, name)
}

// ErrNotAllowed: the namespace is not on the tenant's allowlist.
var ErrNotAllowed = errors.New("nsproxy: namespace not on the allowlist")

// MayUse decides whether a connection of tenant may dial inside h for a
// "namespace *" server (h is the connection's namespace: its listener's
// or the one its NETNS TLV selected). The daemon's own namespace is
// everyone's; a named one must be the tenant's, and h must still be the
// handle registered under its name (a name given to another namespace
// since does not carry the old one's owner over). The engine calls it
// before every such dial.
func (r *Registry) MayUse(tenant string, h *Handle) error {
	if h == nil || h.IsDefault() {
		return nil
	}
	tenant = tenantOr(tenant)
	name := h.Name()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.slots[name]
	if !ok || s.h != h {
		return fmt.Errorf("%w: %q is no longer registered under that name", ErrOtherTenant, name)
	}
	if o := r.ownerLocked(name); o != tenant {
		return fmt.Errorf("%w: %q is tenant %s's, the frontend is tenant %s's", ErrOtherTenant, name, o, tenant)
	}
	return nil
}
