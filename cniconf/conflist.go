package cniconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nsproxy/nsproxy/cniplugin"
)

// PluginType is the "type" of the nsproxy-cni entry in a conflist.
const PluginType = "nsproxy-cni"

const (
	// BackupSuffix ends the name of the backup of a changed file.
	BackupSuffix = ".nsproxy-backup"
	// RemovedKey is the top-level key that records the plugins install
	// took out of the chain.
	RemovedKey  = "nsproxyRemovedPlugins"
	portmapType = "portmap"
	// Real conflists are a few KiB and a few levels deep. The limits keep a
	// hostile or corrupt file from costing much: pretty-printing grows
	// with the square of the depth.
	maxSize  = 1 << 20
	maxDepth = 64
)

// supportedVersions are the spec versions nsproxy-cni speaks, as the
// plugin itself says. libcni fails ADD for a plugin that does not support
// the list's cniVersion, and podman then drops the whole network: install
// refuses other versions.
var supportedVersions = cniplugin.SupportedVersions.SupportedVersions()

// defaultCapabilities are what nsproxy-cni needs from the runtime.
var defaultCapabilities = []string{"portMappings", "io.kubernetes.cri.pod-annotations"}

// Errors of Install and Uninstall, wrapped with what is wrong.
var (
	ErrNotJSON       = errors.New("not valid JSON")
	ErrNotConflist   = errors.New("not a CNI network configuration list")
	ErrCNIVersion    = errors.New("cniVersion not supported by nsproxy-cni")
	ErrNothingToWrap = errors.New("no plugin to chain after")
	// ErrBadPluginConfig: the nsproxy-cni entry is one the plugin refuses.
	ErrBadPluginConfig = errors.New("invalid nsproxy-cni config")
)

// Options say what Install adds besides the default entry. The zero value
// adds the default entry and keeps portmap.
type Options struct {
	// PluginConfig holds extra keys of the nsproxy-cni entry; its
	// "capabilities" object is merged over the default capabilities.
	PluginConfig PluginConfig
	// ReplacePortmap removes portmap plugins (recorded for Uninstall).
	ReplacePortmap bool
}

// PluginConfig is a checked JSON object of extra keys for the nsproxy-cni
// entry (ParsePluginConfig); the zero value has none.
type PluginConfig struct {
	keys jsonObject
}

// Result is the outcome for one file.
type Result struct {
	Out     []byte   // the new content; nil when the file stays as it is
	Summary string   // "installed nsproxy-cni", "already installed", ...
	Notes   []string // things the operator should know
}

// conflist is a parsed network configuration list.
type conflist struct {
	doc     jsonObject
	plugins []json.RawMessage
	types   []string // the "type" of each plugin
}

// parseConflist checks that data is a conflist and splits its plugins.
func parseConflist(data []byte) (*conflist, error) {
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotConflist, maxSize)
	}
	doc, err := parseJSONObject(data)
	if err != nil {
		if !json.Valid(data) {
			return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotConflist, err)
	}
	if jsonDepth(data) > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrNotConflist, maxDepth)
	}
	raw, ok := doc.get("plugins")
	if !ok {
		if _, single := doc.get("type"); single {
			return nil, fmt.Errorf(`%w: it is a single-plugin network configuration (a .conf) without a "plugins" list; `+
				`convert it into a .conflist ({"cniVersion": ..., "name": ..., "plugins": [<this plugin without cniVersion and name>]}), `+
				`remove the .conf and run install-cni on the .conflist`, ErrNotConflist)
		}
		return nil, fmt.Errorf(`%w: no "plugins" list`, ErrNotConflist)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil || plugins == nil {
		return nil, fmt.Errorf(`%w: "plugins" is not a list`, ErrNotConflist)
	}
	c := &conflist{doc: doc, plugins: plugins}
	for i, p := range plugins {
		t, err := pluginType(p)
		if err != nil {
			return nil, fmt.Errorf("%w: plugins[%d]: %v", ErrNotConflist, i, err)
		}
		c.types = append(c.types, t)
	}
	return c, nil
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
		doc = doc.del(RemovedKey)
	} else {
		b, err := json.Marshal(removed)
		if err != nil {
			return nil, err
		}
		doc = doc.set(RemovedKey, b)
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
	raw, ok := c.doc.get(RemovedKey)
	if !ok {
		return nil, nil
	}
	var rs []removedPlugin
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("%q is malformed (%v): restore the plugins it held from the backup", RemovedKey, err)
	}
	for i, r := range rs {
		if _, err := pluginType(r.Plugin); err != nil || r.Index < 0 {
			return nil, fmt.Errorf("%q[%d] is malformed: restore the plugins it held from the backup", RemovedKey, i)
		}
	}
	return rs, nil
}

// ParsePluginConfig checks a JSON object of extra keys for the
// nsproxy-cni entry: keys the runtime sets itself are refused. Blank s is
// no extra keys.
func ParsePluginConfig(s string) (PluginConfig, error) {
	if strings.TrimSpace(s) == "" {
		return PluginConfig{}, nil
	}
	o, err := parseJSONObject([]byte(s))
	if err != nil {
		return PluginConfig{}, err
	}
	for _, m := range o {
		switch m.Key {
		case "type":
			var t string
			if json.Unmarshal(m.Value, &t) != nil || t != PluginType {
				return PluginConfig{}, fmt.Errorf("\"type\" can only be %q", PluginType)
			}
		case "capabilities":
			if _, err := parseJSONObject(m.Value); err != nil {
				return PluginConfig{}, fmt.Errorf("\"capabilities\" must be an object: %v", err)
			}
		case "name", "cniVersion", "prevResult", "runtimeConfig", "args":
			return PluginConfig{}, fmt.Errorf("%q is set by the runtime, not in the conflist entry", m.Key)
		}
	}
	return PluginConfig{keys: o}, nil
}

// checkEntry parses the nsproxy-cni entry e as the plugin will, with the
// list's name and cniVersion as the runtime adds them: an entry the plugin
// refuses (a --plugin-config typo such as "strict": "true") would fail every
// ADD of the network, and the runtime drop it.
func checkEntry(e json.RawMessage, name, version string) error {
	o, err := parseJSONObject(e)
	if err != nil {
		return err
	}
	o = o.set("name", jsonString(name)).set("cniVersion", jsonString(version))
	if _, err := cniplugin.ParseConfig(o.compact()); err != nil {
		return fmt.Errorf("%w: the %s entry (--plugin-config and the keys the conflist had) would fail every ADD: %v",
			ErrBadPluginConfig, PluginType, err)
	}
	return nil
}

// desiredEntry merges the nsproxy-cni entry into existing (nil: a new
// entry): type, the default capabilities, then --plugin-config. Keys that
// only the existing entry has are kept.
func desiredEntry(existing json.RawMessage, opt Options) (json.RawMessage, error) {
	e := jsonObject{{"type", jsonString(PluginType)}}
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
	for _, c := range defaultCapabilities {
		caps = caps.set(c, json.RawMessage("true"))
	}
	if raw, ok := opt.PluginConfig.keys.get("capabilities"); ok {
		extra, err := parseJSONObject(raw)
		if err != nil {
			return nil, err
		}
		for _, m := range extra {
			caps = caps.set(m.Key, m.Value)
		}
	}
	e = e.set("capabilities", caps.compact())
	for _, m := range opt.PluginConfig.keys {
		if m.Key != "type" && m.Key != "capabilities" {
			e = e.set(m.Key, m.Value)
		}
	}
	return e.compact(), nil
}

// Install adds (or updates) the nsproxy-cni entry in a conflist's
// content. Result.Out is nil when the content already is as it should be.
func Install(data []byte, opt Options) (Result, error) {
	c, err := parseConflist(data)
	if err != nil {
		return Result{}, err
	}
	var version string
	if raw, ok := c.doc.get("cniVersion"); ok {
		json.Unmarshal(raw, &version)
	}
	if !slices.Contains(supportedVersions, version) {
		return Result{}, fmt.Errorf("%w: %q (it speaks %s); the runtime would fail every ADD and drop the network",
			ErrCNIVersion, version, strings.Join(supportedVersions, ", "))
	}
	removed, err := c.removedPlugins()
	if err != nil {
		return Result{}, err
	}
	var res Result
	var plugins []json.RawMessage
	var took []string
	recorded := removed // from an earlier install
	ours := -1          // index of the first nsproxy-cni entry in plugins
	other := 0          // plugins other than nsproxy-cni seen so far
	for i, p := range c.plugins {
		switch t := c.types[i]; {
		case t == PluginType:
			if ours < 0 {
				ours = len(plugins)
			}
		case t == portmapType && opt.ReplacePortmap:
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
		return Result{}, fmt.Errorf("%w: nsproxy-cni is a chained plugin and needs one before it (e.g. bridge)", ErrNothingToWrap)
	}
	changed := len(took) > 0
	var name string
	if raw, ok := c.doc.get("name"); ok {
		json.Unmarshal(raw, &name)
	}
	if ours < 0 {
		e, err := desiredEntry(nil, opt)
		if err != nil {
			return Result{}, err
		}
		if err := checkEntry(e, name, version); err != nil {
			return Result{}, err
		}
		plugins = append(plugins, e)
		res.Summary = "installed " + PluginType
		changed = true
	} else {
		e, err := desiredEntry(plugins[ours], opt)
		if err != nil {
			return Result{}, err
		}
		if err := checkEntry(e, name, version); err != nil {
			return Result{}, err
		}
		if jsonEqual(e, plugins[ours]) {
			res.Summary = "already installed"
		} else {
			plugins[ours] = e
			res.Summary = "updated the " + PluginType + " entry"
			changed = true
		}
	}
	if len(took) > 0 {
		res.Summary += "; removed portmap (recorded as " + RemovedKey + " for uninstall-cni)"
		res.Notes = append(res.Notes, "portmap is out of the chain: nsproxy serves the TCP port mappings; "+
			"UDP and SCTP mappings are no longer forwarded (keep portmap, i.e. install without --replace-portmap, if you need them)")
	} else if slices.Contains(c.types, portmapType) {
		res.Notes = append(res.Notes, "portmap stays in the chain: its iptables DNAT takes the TCP port mappings "+
			"before nsproxy's listeners see them; --replace-portmap lets nsproxy serve TCP (UDP mappings then need portmap)")
	} else if len(removed) > 0 {
		res.Notes = append(res.Notes, "portmap was replaced by an earlier install; uninstall-cni puts it back")
	}
	if changed {
		if res.Out, err = c.encode(plugins, removed); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// Uninstall removes every nsproxy-cni entry and puts back the
// plugins that --replace-portmap took out.
func Uninstall(data []byte) (Result, error) {
	c, err := parseConflist(data)
	if err != nil {
		return Result{}, err
	}
	removed, err := c.removedPlugins()
	if err != nil {
		return Result{}, err
	}
	var plugins []json.RawMessage
	var types []string
	for i, p := range c.plugins {
		if c.types[i] != PluginType {
			plugins = append(plugins, p)
			types = append(types, c.types[i])
		}
	}
	dropped := len(c.plugins) - len(plugins)
	if dropped == 0 && len(removed) == 0 {
		if _, ok := c.doc.get(RemovedKey); !ok {
			return Result{Summary: "not installed"}, nil
		}
	}
	var res Result
	if dropped > 0 {
		res.Summary = "removed " + PluginType
	} else {
		res.Summary = PluginType + " was not in the chain"
	}
	sort.SliceStable(removed, func(i, j int) bool { return removed[i].Index < removed[j].Index })
	present := slices.Clone(types) // before any restore
	for _, r := range removed {
		t, _ := pluginType(r.Plugin)
		if slices.Contains(present, t) {
			res.Notes = append(res.Notes, fmt.Sprintf("%s is in the chain again: the recorded one is not restored", t))
			continue
		}
		at := min(r.Index, len(plugins))
		plugins = slices.Insert(plugins, at, r.Plugin)
		types = slices.Insert(types, at, t)
		res.Summary += "; restored " + t
	}
	if res.Out, err = c.encode(plugins, nil); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Conflists is what a command works on: --conflist FILE, or every
