package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// install-cni and uninstall-cni chain the nsproxy-cni plugin into the CNI
// network configuration lists (*.conflist) that podman, containerd or any
// libcni runtime already has, and take it out again.
//
// What they promise:
//   - Idempotent: a file that already has the entry is not written at all.
//   - Atomic: the new content goes to a temporary file in the same
//     directory (mode and owner of the original, fsynced), renamed over
//     the original, and the directory is fsynced. The temporary name does
//     not end in .conflist/.conf/.json, so runtimes never load it. Where
//     the directory has podman's cni.lock, it is held while a file changes.
//   - A backup FILE.nsproxy-backup with the original bytes is created
//     before the first change and never overwritten; uninstall-cni deletes
//     it once the file is back to the same content.
//   - Only JSON objects with a "plugins" list are touched; anything else
//     is refused with an error that names the file.
//   - Everything else is preserved: key order, unknown fields, the other
//     plugins and their order (values are carried as raw JSON, never
//     through Go structs). Files that change are re-indented with 2 spaces.
//
// --replace-portmap takes the portmap plugin out of the chain, since
// nsproxy-cni then serves the TCP port mappings. It records what it took
// in the file itself, as the top-level key nsproxyRemovedPlugins
// ([{"index": N, "plugin": {...}}], N counted without nsproxy-cni), which
// libcni and the runtimes ignore and no plugin receives. uninstall-cni puts
// each entry back at its index and drops the key. The record, not the
// backup, is the source of truth: the backup is taken once, before the
// first change, so it can predate later edits of the file, and a portmap
// missing from a file next to a backup that has one may as well have been
// removed by the administrator. The backup is for a manual restore.

const (
	cniPluginType   = "nsproxy-cni"
	cniPortmapType  = "portmap"
	cniBackupSuffix = ".nsproxy-backup"
	cniRemovedKey   = "nsproxyRemovedPlugins"
	cniDefaultDir   = "/etc/cni/net.d"
	cniLockName     = "cni.lock" // podman's lock of its CNI config directory
	cniLockWait     = 10 * time.Second
	// Real conflists are a few KiB and a few levels deep. The limits keep a
	// hostile or corrupt file from costing much: pretty-printing grows
	// with the square of the depth.
	cniMaxSize  = 1 << 20
	cniMaxDepth = 64
)

// cniSupportedVersions are the spec versions nsproxy-cni speaks. libcni
// fails ADD for a plugin that does not support the list's cniVersion, and
// podman then drops the whole network: install refuses other versions.
var cniSupportedVersions = []string{"0.4.0", "1.0.0", "1.1.0"}

// cniDefaultCapabilities are what nsproxy-cni needs from the runtime.
var cniDefaultCapabilities = []string{"portMappings", "io.kubernetes.cri.pod-annotations"}

// installCNIUsage lists both commands; it starts with a blank line so that
// it can follow the main usage.
const installCNIUsage = `
Chain the nsproxy-cni plugin into CNI network configuration lists:
  nsproxy install-cni [--conflist FILE | --all] [--dir DIR] [--plugin-config JSON]
                      [--replace-portmap] [--plugin-binary FILE --bin-dir DIR]
                      [--cni-bin-dir DIR[:DIR...]] [--dry-run]
  nsproxy uninstall-cni [--conflist FILE | --all] [--dir DIR] [--dry-run]
`

var (
	errConfNotJSON   = errors.New("not valid JSON")
	errNotConflist   = errors.New("not a CNI network configuration list")
	errCNIVersion    = errors.New("cniVersion not supported by nsproxy-cni")
	errNothingToWrap = errors.New("no plugin to chain after")
)

// cniInstallOptions say what install adds besides the default entry.
type cniInstallOptions struct {
	// PluginConfig holds extra keys of the nsproxy-cni entry; its
	// "capabilities" object is merged over the default capabilities.
	PluginConfig jsonObject
	// ReplacePortmap removes portmap plugins (recorded for uninstall).
	ReplacePortmap bool
}

// cniResult is the outcome for one file.
type cniResult struct {
	out     []byte   // the new content; nil when the file stays as it is
	summary string   // "installed nsproxy-cni", "already installed", ...
	notes   []string // things the operator should know
}

// jsonMember is one key of a JSON object, its value kept as raw JSON.
type jsonMember struct {
	Key   string
	Value json.RawMessage
}

// jsonObject is a JSON object that keeps its key order and raw values.
type jsonObject []jsonMember

// parseJSONObject decodes one JSON object and nothing after it. Duplicate
// keys are refused: Go (and thus libcni) would silently use the last one.
func parseJSONObject(b []byte) (jsonObject, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := jsonObject{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key %v is not a string", tok)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		o = append(o, jsonMember{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

func (o jsonObject) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// set replaces the value of key in place, or appends key.
func (o jsonObject) set(key string, v json.RawMessage) jsonObject {
	for i := range o {
		if o[i].Key == key {
			o[i].Value = v
			return o
		}
	}
	return append(o, jsonMember{key, v})
}

func (o jsonObject) del(key string) jsonObject {
	return slices.DeleteFunc(o, func(m jsonMember) bool { return m.Key == key })
}

// compact encodes o without whitespace, raw values as they came.
func (o jsonObject) compact() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(m.Key))
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// jsonString quotes s without HTML escaping (which would change bytes that
// the file had as they were).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func jsonArray(items []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// prettyJSON indents with 2 spaces and ends with a newline.
func prettyJSON(compact []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// jsonEqual reports whether a and b hold the same JSON value. Numbers are
// compared as written, so no value is out of range.
func jsonEqual(a, b []byte) bool {
	decode := func(x []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	va, oka := decode(a)
	vb, okb := decode(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

// conflist is a parsed network configuration list.
type conflist struct {
	doc     jsonObject
	plugins []json.RawMessage
	types   []string // the "type" of each plugin
}

// parseConflist checks that data is a conflist and splits its plugins.
func parseConflist(data []byte) (*conflist, error) {
	if len(data) > cniMaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", errNotConflist, cniMaxSize)
	}
	doc, err := parseJSONObject(data)
	if err != nil {
		if !json.Valid(data) {
			return nil, fmt.Errorf("%w: %v", errConfNotJSON, err)
		}
		return nil, fmt.Errorf("%w: %v", errNotConflist, err)
	}
	if jsonDepth(data) > cniMaxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d levels", errNotConflist, cniMaxDepth)
	}
	raw, ok := doc.get("plugins")
	if !ok {
		if _, single := doc.get("type"); single {
			return nil, fmt.Errorf(`%w: it is a single-plugin network configuration (a .conf) without a "plugins" list; `+
				`convert it into a .conflist ({"cniVersion": ..., "name": ..., "plugins": [<this plugin without cniVersion and name>]}), `+
				`remove the .conf and run install-cni on the .conflist`, errNotConflist)
		}
		return nil, fmt.Errorf(`%w: no "plugins" list`, errNotConflist)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil || plugins == nil {
		return nil, fmt.Errorf(`%w: "plugins" is not a list`, errNotConflist)
	}
	c := &conflist{doc: doc, plugins: plugins}
	for i, p := range plugins {
		t, err := pluginType(p)
		if err != nil {
			return nil, fmt.Errorf("%w: plugins[%d]: %v", errNotConflist, i, err)
		}
		c.types = append(c.types, t)
	}
	return c, nil
}

// jsonDepth is the deepest nesting of objects and arrays in valid JSON.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// pluginType is the "type" of one plugin entry.
func pluginType(p json.RawMessage) (string, error) {
	o, err := parseJSONObject(p)
	if err != nil {
		return "", err
	}
	raw, ok := o.get("type")
	if !ok {
		return "", errors.New(`no "type"`)
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil || t == "" {
		return "", errors.New(`"type" is not a plugin name`)
	}
	return t, nil
}

// encode writes the document back with plugins (and the removal record,
// or none when removed is empty).
func (c *conflist) encode(plugins []json.RawMessage, removed []removedPlugin) ([]byte, error) {
	doc := slices.Clone(c.doc).set("plugins", jsonArray(plugins))
	if len(removed) == 0 {
		doc = doc.del(cniRemovedKey)
	} else {
		b, err := json.Marshal(removed)
		if err != nil {
			return nil, err
		}
		doc = doc.set(cniRemovedKey, b)
	}
	return prettyJSON(doc.compact())
}

// removedPlugin records a plugin that install took out of the chain.
type removedPlugin struct {
	// Index is its position among the plugins other than nsproxy-cni.
	Index  int             `json:"index"`
	Plugin json.RawMessage `json:"plugin"`
}

// removedPlugins reads the record; a malformed one is an error, since
// uninstall could not restore from it.
func (c *conflist) removedPlugins() ([]removedPlugin, error) {
	raw, ok := c.doc.get(cniRemovedKey)
	if !ok {
		return nil, nil
	}
	var rs []removedPlugin
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("%q is malformed (%v): restore the plugins it held from the backup", cniRemovedKey, err)
	}
	for i, r := range rs {
		if _, err := pluginType(r.Plugin); err != nil || r.Index < 0 {
			return nil, fmt.Errorf("%q[%d] is malformed: restore the plugins it held from the backup", cniRemovedKey, i)
		}
	}
	return rs, nil
}

// parsePluginConfig checks --plugin-config: a JSON object with keys the
// runtime does not set itself.
func parsePluginConfig(s string) (jsonObject, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	o, err := parseJSONObject([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("--plugin-config: %v", err)
	}
	for _, m := range o {
		switch m.Key {
		case "type":
			var t string
			if json.Unmarshal(m.Value, &t) != nil || t != cniPluginType {
				return nil, fmt.Errorf("--plugin-config: \"type\" can only be %q", cniPluginType)
			}
		case "capabilities":
			if _, err := parseJSONObject(m.Value); err != nil {
				return nil, fmt.Errorf("--plugin-config: \"capabilities\" must be an object: %v", err)
			}
		case "name", "cniVersion", "prevResult", "runtimeConfig", "args":
			return nil, fmt.Errorf("--plugin-config: %q is set by the runtime, not in the conflist entry", m.Key)
		}
	}
	return o, nil
}

// desiredEntry merges the nsproxy-cni entry into existing (nil: a new
// entry): type, the default capabilities, then --plugin-config. Keys that
// only the existing entry has are kept.
func desiredEntry(existing json.RawMessage, opt cniInstallOptions) (json.RawMessage, error) {
	e := jsonObject{{"type", jsonString(cniPluginType)}}
	if existing != nil {
		var err error
		if e, err = parseJSONObject(existing); err != nil {
			return nil, err
		}
		e = slices.Clone(e)
	}
	caps := jsonObject{}
	if raw, ok := e.get("capabilities"); ok {
		if c, err := parseJSONObject(raw); err == nil {
			caps = slices.Clone(c)
		}
	}
	for _, c := range cniDefaultCapabilities {
		caps = caps.set(c, json.RawMessage("true"))
	}
	if raw, ok := opt.PluginConfig.get("capabilities"); ok {
		extra, err := parseJSONObject(raw)
		if err != nil {
			return nil, err
		}
		for _, m := range extra {
			caps = caps.set(m.Key, m.Value)
		}
	}
	e = e.set("capabilities", caps.compact())
	for _, m := range opt.PluginConfig {
		if m.Key != "type" && m.Key != "capabilities" {
			e = e.set(m.Key, m.Value)
		}
	}
	return e.compact(), nil
}

// installConflist adds (or updates) the nsproxy-cni entry of one
// conflist's content.
func installConflist(data []byte, opt cniInstallOptions) (cniResult, error) {
	c, err := parseConflist(data)
	if err != nil {
		return cniResult{}, err
	}
	var version string
	if raw, ok := c.doc.get("cniVersion"); ok {
		json.Unmarshal(raw, &version)
	}
	if !slices.Contains(cniSupportedVersions, version) {
		return cniResult{}, fmt.Errorf("%w: %q (it speaks %s); the runtime would fail every ADD and drop the network",
			errCNIVersion, version, strings.Join(cniSupportedVersions, ", "))
	}
	removed, err := c.removedPlugins()
	if err != nil {
		return cniResult{}, err
	}
	var res cniResult
	var plugins []json.RawMessage
	var took []string
	recorded := removed // from an earlier install
	ours := -1          // index of the first nsproxy-cni entry in plugins
	other := 0          // plugins other than nsproxy-cni seen so far
	for i, p := range c.plugins {
		switch t := c.types[i]; {
		case t == cniPluginType:
			if ours < 0 {
				ours = len(plugins)
			}
		case t == cniPortmapType && opt.ReplacePortmap:
			// One record per type: a portmap added again after an
			// earlier replace is dropped, the recorded one returns.
			if !slices.ContainsFunc(recorded, func(r removedPlugin) bool {
				rt, _ := pluginType(r.Plugin)
				return rt == t
			}) {
				removed = append(removed, removedPlugin{Index: other, Plugin: p})
			}
			took = append(took, t)
			other++
			continue
		default:
			other++
		}
		plugins = append(plugins, p)
	}
	if len(plugins) == 0 || (len(plugins) == 1 && ours == 0) {
		return cniResult{}, fmt.Errorf("%w: nsproxy-cni is a chained plugin and needs one before it (e.g. bridge)", errNothingToWrap)
	}
	changed := len(took) > 0
	if ours < 0 {
		e, err := desiredEntry(nil, opt)
		if err != nil {
			return cniResult{}, err
		}
		plugins = append(plugins, e)
		res.summary = "installed " + cniPluginType
		changed = true
	} else {
		e, err := desiredEntry(plugins[ours], opt)
		if err != nil {
			return cniResult{}, err
		}
		if jsonEqual(e, plugins[ours]) {
			res.summary = "already installed"
		} else {
			plugins[ours] = e
			res.summary = "updated the " + cniPluginType + " entry"
			changed = true
		}
	}
	if len(took) > 0 {
		res.summary += "; removed portmap (recorded as " + cniRemovedKey + " for uninstall-cni)"
		res.notes = append(res.notes, "portmap is out of the chain: nsproxy serves the TCP port mappings; "+
			"UDP and SCTP mappings are no longer forwarded (keep portmap, i.e. install without --replace-portmap, if you need them)")
	} else if slices.Contains(c.types, cniPortmapType) {
		res.notes = append(res.notes, "portmap stays in the chain: its iptables DNAT takes the TCP port mappings "+
			"before nsproxy's listeners see them; --replace-portmap lets nsproxy serve TCP (UDP mappings then need portmap)")
	} else if len(removed) > 0 {
		res.notes = append(res.notes, "portmap was replaced by an earlier install; uninstall-cni puts it back")
	}
	if changed {
		if res.out, err = c.encode(plugins, removed); err != nil {
			return cniResult{}, err
		}
	}
	return res, nil
}

// uninstallConflist removes every nsproxy-cni entry and puts back the
// plugins that --replace-portmap took out.
func uninstallConflist(data []byte) (cniResult, error) {
	c, err := parseConflist(data)
	if err != nil {
		return cniResult{}, err
	}
	removed, err := c.removedPlugins()
	if err != nil {
		return cniResult{}, err
	}
	var plugins []json.RawMessage
	var types []string
	for i, p := range c.plugins {
		if c.types[i] != cniPluginType {
			plugins = append(plugins, p)
			types = append(types, c.types[i])
		}
	}
	dropped := len(c.plugins) - len(plugins)
	if dropped == 0 && len(removed) == 0 {
		if _, ok := c.doc.get(cniRemovedKey); !ok {
			return cniResult{summary: "not installed"}, nil
		}
	}
	var res cniResult
	if dropped > 0 {
		res.summary = "removed " + cniPluginType
	} else {
		res.summary = cniPluginType + " was not in the chain"
	}
	sort.SliceStable(removed, func(i, j int) bool { return removed[i].Index < removed[j].Index })
	present := slices.Clone(types) // before any restore
	for _, r := range removed {
		t, _ := pluginType(r.Plugin)
		if slices.Contains(present, t) {
			res.notes = append(res.notes, fmt.Sprintf("%s is in the chain again: the recorded one is not restored", t))
			continue
		}
		at := min(r.Index, len(plugins))
		plugins = slices.Insert(plugins, at, r.Plugin)
		types = slices.Insert(types, at, t)
		res.summary += "; restored " + t
	}
	if res.out, err = c.encode(plugins, nil); err != nil {
		return cniResult{}, err
	}
	return res, nil
}

// cniFiles is what a command works on: --conflist FILE, or every
// *.conflist in dir with --all. Single-plugin files found by --all are
// reported in notes.
func cniFiles(conflist string, all bool, dir string) (files, notes []string, err error) {
	if conflist != "" {
		return []string{conflist}, nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		n := e.Name()
		switch filepath.Ext(n) {
		case ".conflist":
			files = append(files, filepath.Join(dir, n))
		case ".conf", ".json":
			notes = append(notes, fmt.Sprintf("%s: skipped: a single-plugin configuration cannot chain nsproxy-cni; convert it into a .conflist",
				filepath.Join(dir, n)))
		}
	}
	return files, notes, nil
}

// cniCommand holds the flags both commands share.
type cniCommand struct {
	name     string
	fs       *flag.FlagSet
	conflist *string
	all      *bool
	dir      *string
	dryRun   *bool
	stdout   io.Writer
	stderr   io.Writer
}

func newCNICommand(name, usageLine string, stdout, stderr io.Writer) *cniCommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &cniCommand{name: name, fs: fs, stdout: stdout, stderr: stderr}
	c.conflist = fs.String("conflist", "", "the conflist `FILE` to change")
	c.all = fs.Bool("all", false, "change every *.conflist in --dir")
	c.dir = fs.String("dir", cniDefaultDir, "CNI configuration `DIR` for --all")
	c.dryRun = fs.Bool("dry-run", false, "print what would change, write nothing")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	return c
}

// parse parses args; code is the exit code when ok is false.
func (c *cniCommand) parse(args []string) (code int, ok bool) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.fs.SetOutput(c.stdout)
			c.fs.Usage()
			return 0, false
		}
		return 2, false
	}
	switch {
	case c.fs.NArg() > 0:
		return c.usageError("unexpected argument %q", c.fs.Arg(0)), false
	case *c.conflist == "" && !*c.all:
		return c.usageError("give --conflist FILE or --all"), false
	case *c.conflist != "" && *c.all:
		return c.usageError("give --conflist FILE or --all, not both"), false
	}
	return 0, true
}

func (c *cniCommand) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "nsproxy %s: %s\n", c.name, fmt.Sprintf(format, a...))
	c.fs.Usage()
	return 2
}

func (c *cniCommand) fail(err error) {
	fmt.Fprintf(c.stderr, "nsproxy %s: %v\n", c.name, err)
}

// each runs op on every file and returns the exit code: 1 when any file
// failed; the others are still processed.
func (c *cniCommand) each(noFiles func() int, op func(path string) error) int {
	paths, notes, err := cniFiles(*c.conflist, *c.all, *c.dir)
	if err != nil {
		c.fail(err)
		return 1
	}
	for _, n := range notes {
		fmt.Fprintln(c.stdout, n)
	}
	if len(paths) == 0 {
		return noFiles()
	}
	code := 0
	for _, p := range paths {
		if err := op(p); err != nil {
			c.fail(fmt.Errorf("%s: %w", p, err))
			code = 1
		}
	}
	return code
}

// report prints a file's result; with --dry-run also the new content.
func (c *cniCommand) report(path string, res cniResult) {
	fmt.Fprintf(c.stdout, "%s: %s\n", path, res.summary)
	for _, n := range res.notes {
		fmt.Fprintf(c.stdout, "  note: %s\n", n)
	}
	if *c.dryRun && res.out != nil {
		fmt.Fprintf(c.stdout, "  dry run: would write:\n%s", res.out)
	}
}

func cmdInstallCNI(args []string, stdout, stderr io.Writer) int {
	c := newCNICommand("install-cni", "nsproxy install-cni [--conflist FILE | --all] [--dir DIR] "+
		"[--plugin-config JSON] [--replace-portmap] [--plugin-binary FILE --bin-dir DIR] [--cni-bin-dir DIR[:DIR]] [--dry-run]", stdout, stderr)
	pluginConfig := c.fs.String("plugin-config", "", "`JSON` object of extra keys for the nsproxy-cni entry, e.g. "+
		`'{"strict":true}'; its "capabilities" are merged over portMappings and io.kubernetes.cri.pod-annotations`)
	replacePortmap := c.fs.Bool("replace-portmap", false, "take the portmap plugin out of the chain: nsproxy serves "+
		"TCP port mappings, UDP mappings are no longer forwarded (uninstall-cni puts portmap back)")
	pluginBinary := c.fs.String("plugin-binary", "", "first copy this nsproxy-cni `FILE` into --bin-dir (atomically)")
	binDir := c.fs.String("bin-dir", "", "the runtime's CNI plugin `DIR`; install refuses to reference nsproxy-cni "+
		"when it is not there, since a missing plugin disables the whole network")
	var searchDirs dirList
	c.fs.Var(&searchDirs, "cni-bin-dir", "the runtime's CNI plugin `DIRs` (repeatable, or a colon list) where every "+
		"chained plugin must be; a missing one is warned about on stderr (default: --bin-dir, else "+
		strings.Join(cniDefaultBinDirs, ":")+")")
	if code, ok := c.parse(args); !ok {
		return code
	}
	switch {
	case len(searchDirs) > 0:
	case *binDir != "":
		searchDirs = dirList{*binDir}
	default:
		searchDirs = cniDefaultBinDirs
	}
	if *pluginBinary != "" && *binDir == "" {
		return c.usageError("--plugin-binary needs --bin-dir")
	}
	cfg, err := parsePluginConfig(*pluginConfig)
	if err != nil {
		return c.usageError("%v", err)
	}
	opt := cniInstallOptions{PluginConfig: cfg, ReplacePortmap: *replacePortmap}
	// The plugin binary goes first: a conflist naming a plugin that the
	// runtime cannot find makes it drop the whole network.
	if *pluginBinary != "" {
		msg, err := installPluginBinary(*pluginBinary, *binDir, *c.dryRun)
		if err != nil {
			c.fail(err)
			return 1
		}
		fmt.Fprintln(stdout, msg)
	}
	if *binDir != "" && !*c.dryRun {
		if fi, err := os.Stat(filepath.Join(*binDir, cniPluginType)); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			c.fail(fmt.Errorf("%s is not an executable in %s: install it first (--plugin-binary), "+
				"a conflist naming a missing plugin disables the whole network", cniPluginType, *binDir))
			return 1
		}
	}
	changed := false
	code := c.each(func() int {
		c.fail(fmt.Errorf("no *.conflist in %s", *c.dir))
		return 1
	}, func(path string) error {
		res, err := updateConflistFile(path, *c.dryRun, true, func(data []byte) (cniResult, error) {
			return installConflist(data, opt)
		})
		if err == nil {
			c.report(path, res)
			changed = changed || res.out != nil
			chain := res.out
			if chain == nil {
				chain, _ = os.ReadFile(path)
			}
			for _, p := range missingPlugins(chain, searchDirs) {
				fmt.Fprintf(stderr, "nsproxy install-cni: warning: %s chains plugin %q, found in none of the CNI plugin "+
					"directories (%s): the runtime drops the whole network (containerd leaves the sandbox SANDBOX_UNKNOWN, "+
					"its veth and IP leaked); install it there or take it out of the chain\n", path, p, strings.Join(searchDirs, ", "))
			}
		}
		return err
	})
	if changed && *binDir == "" {
		fmt.Fprintf(stdout, "note: the runtime must find %s in its CNI plugin directory (containerd: /opt/cni/bin, "+
			"Debian's podman: /usr/lib/cni), or it drops the whole network\n", cniPluginType)
	}
	return code
}

// cniDefaultBinDirs are where runtimes look for CNI plugins by default:
// containerd and the reference plugins' /opt/cni/bin, Debian's podman
// /usr/lib/cni.
var cniDefaultBinDirs = dirList{"/opt/cni/bin", "/usr/lib/cni"}

// dirList collects a repeatable flag whose values may be colon lists.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ":") }

func (d *dirList) Set(v string) error {
	for _, dir := range filepath.SplitList(v) {
		if dir != "" {
			*d = append(*d, dir)
		}
	}
	return nil
}

// missingPlugins lists the plugin types of a conflist's chain, IPAM
// plugins included, that no directory holds as an executable file. A
// runtime that cannot find one of them fails every ADD of the network.
func missingPlugins(data []byte, dirs []string) []string {
	var c struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Type string `json:"type"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(data, &c) != nil {
		return nil // install has already reported what is wrong with it
	}
	var missing []string
	for _, p := range c.Plugins {
		for _, typ := range []string{p.Type, p.IPAM.Type} {
			if typ == "" || slices.Contains(missing, typ) {
				continue
			}
			found := !strings.ContainsRune(typ, '/') && slices.ContainsFunc(dirs, func(dir string) bool {
				fi, err := os.Stat(filepath.Join(dir, typ))
				return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
			})
			if !found {
				missing = append(missing, typ)
			}
		}
	}
	return missing
}

func cmdUninstallCNI(args []string, stdout, stderr io.Writer) int {
	c := newCNICommand("uninstall-cni", "nsproxy uninstall-cni [--conflist FILE | --all] [--dir DIR] [--dry-run]", stdout, stderr)
	if code, ok := c.parse(args); !ok {
		return code
	}
	return c.each(func() int {
		fmt.Fprintf(stdout, "no *.conflist in %s: nothing to do\n", *c.dir)
		return 0
	}, func(path string) error {
		res, err := updateConflistFile(path, *c.dryRun, false, uninstallConflist)
		if err == nil {
			c.report(path, res)
		}
		return err
	})
}

// updateConflistFile applies change to the file at path (symlinks are
// followed, so that the link stays a link) and writes the result
// atomically. install keeps a backup first; uninstall deletes the backup
// when the file is back to its content.
func updateConflistFile(path string, dryRun, install bool, change func([]byte) (cniResult, error)) (cniResult, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return cniResult{}, err
	}
	unlock, err := lockCNIDir(filepath.Dir(real), dryRun)
	if err != nil {
		return cniResult{}, err
	}
	defer unlock()
	fi, err := os.Stat(real)
	if err != nil {
		return cniResult{}, err
	}
	if !fi.Mode().IsRegular() {
		return cniResult{}, errors.New("not a regular file")
	}
	if fi.Size() > cniMaxSize {
		return cniResult{}, fmt.Errorf("%w: larger than %d bytes", errNotConflist, cniMaxSize)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return cniResult{}, err
	}
	res, err := change(data)
	if err != nil || res.out == nil || dryRun {
		return res, err
	}
	backup := real + cniBackupSuffix
	if install {
		created, err := writeOnce(backup, data, fi)
		if err != nil {
			return cniResult{}, fmt.Errorf("backup: %w", err)
		}
		if created {
			res.summary += " (backup: " + backup + ")"
		}
	}
	if err := writeFileAtomic(real, res.out, fi); err != nil {
		return cniResult{}, err
	}
	if !install {
		if old, err := os.ReadFile(backup); err == nil && jsonEqual(old, res.out) {
			if os.Remove(backup) == nil {
				res.summary += " (removed the backup: the file is back to its content)"
			}
		}
	}
	return res, nil
}

// lockCNIDir holds podman's cni.lock of dir, if there is one, so that a
// concurrent `podman network create` does not interleave with us.
func lockCNIDir(dir string, readOnly bool) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, cniLockName), os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || (readOnly && errors.Is(err, fs.ErrPermission)) {
			return func() {}, nil
		}
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	for deadline := time.Now().Add(cniLockWait); ; {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if (err != unix.EAGAIN && err != unix.EACCES) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeTemp writes data to a new temporary file in dir with the mode and
// owner of like, fsynced; the caller renames or links it into place.
func writeTemp(dir, base string, data []byte, like fs.FileInfo) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".nsproxy-tmp-")
	if err != nil {
		return "", err
	}
	err = func() error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Chmod(like.Mode().Perm()); err != nil {
			return err
		}
		if st, ok := like.Sys().(*syscall.Stat_t); ok {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// writeFileAtomic replaces path with data: readers see the old or the new
// content, never a part.
func writeFileAtomic(path string, data []byte, like fs.FileInfo) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, like)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeOnce creates path with data unless it exists; a link(2) of a
// complete temporary file makes creation atomic and never overwrites.
func writeOnce(path string, data []byte, like fs.FileInfo) (created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, like)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// installPluginBinary copies src to binDir/nsproxy-cni with a rename, so
// that a runtime executing the old binary is never disturbed (no ETXTBSY,
// no half-written file).
func installPluginBinary(src, binDir string, dryRun bool) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("--plugin-binary: %w", err)
	}
	dst := filepath.Join(binDir, cniPluginType)
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return dst + ": up to date", nil
	}
	if dryRun {
		return dst + ": dry run: would copy " + src, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := writeTemp(binDir, cniPluginType, data, executableInfo{})
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := syncDir(binDir); err != nil {
		return "", err
	}
	return dst + ": copied from " + src, nil
}

// executableInfo describes a 0755 file, owned by us, for writeTemp.
type executableInfo struct{}

func (executableInfo) Name() string       { return cniPluginType }
func (executableInfo) Size() int64        { return 0 }
func (executableInfo) Mode() fs.FileMode  { return 0o755 }
func (executableInfo) ModTime() time.Time { return time.Time{} }
func (executableInfo) IsDir() bool        { return false }
func (executableInfo) Sys() any           { return nil } // keep our own uid/gid
