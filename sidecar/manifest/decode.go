package manifest

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/nsproxy/nsproxy/hooks"
)

// MaxSize bounds a file, and a directory's files together. It is the
// control socket's body limit, so that what Load reads can be applied
// through the socket.
const MaxSize = hooks.MaxAttachmentSize

// Decode reads the documents of one file (several, separated by ---;
// empty ones are skipped) and checks their schema. file names the input
// in errors. Every problem is reported, each an *Error (FILE:LINE:COLUMN:
// what; what to do) wrapping ErrInvalid or ErrTooLarge, in file and line
// order, joined with errors.Join (Unwrap() []error lists them). On error
// the Set is empty.
//
// Left to the daemon's validator, which positions its errors with
// Set.Where: addresses and durations of frontends and servers, backend
// references, bind conflicts, and whatever needs objects applied before
// (the Tenant that an Exposure or Service names may be in this Set or
// applied already; namespaces and names other tenants own).
func Decode(file string, data []byte) (Set, error) {
	d := newDecoder()
	d.file(file, data)
	return d.finish()
}

// Files is what a manifest path means, for --manifests DIR and for the
// CLI's -f PATH alike: the file itself, or a directory's *.yaml and *.yml
// files in name order, skipping subdirectories (also through symlinks)
// and names starting with "." (editors' lock and backup files). A
// directory without manifest files gives none and no error.
func Files(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries { // ReadDir sorts by name
		ext := filepath.Ext(e.Name())
		if (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(e.Name(), ".") {
			name := filepath.Join(path, e.Name())
			if fi, err := os.Stat(name); err == nil && fi.IsDir() {
				continue
			}
			files = append(files, name)
		}
	}
	return files, nil
}

// Load decodes Files(path) in order as one Set (names must be unique
// across the files); a directory without manifest files is
// ErrNoDocuments. Only regular files are read (a FIFO would block).
func Load(path string) (Set, error) {
	files, err := Files(path)
	if err != nil {
		return Set{}, err
	}
	if len(files) == 0 {
		return Set{}, fmt.Errorf("%s: %w: write manifests in files named *.yaml or *.yml", path, ErrNoDocuments)
	}
	d := newDecoder()
	left := MaxSize
	for _, name := range files {
		data, err := readAtMost(name, left)
		if err != nil {
			return Set{}, err
		}
		left -= len(data)
		d.file(name, data)
	}
	return d.finish()
}

// readAtMost reads a file of at most limit bytes.
func readAtMost(name string, limit int) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s); manifests are files", name, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, tooLarge(name)
	}
	return data, nil
}

func tooLarge(file string) error {
	return &Error{Pos: Pos{File: file}, Err: ErrTooLarge,
		Msg: fmt.Sprintf("manifests larger than %d bytes (this file, or with the files before it); split them and apply them apart", MaxSize)}
}

// decoder builds one Set from the documents of one or more files.
type decoder struct {
	set      Set
	probs    problems
	fileName string
	// prefix is the current document's path prefix, KIND/NAME.
	prefix string
	// defined: where each KIND/NAME was first defined.
	defined map[string]Pos
	// bad: paths whose value, or something in it, was refused (type
	// errors, unknown fields): the checks of its value say nothing more
	// about it (d.fail), but fields found missing are still reported
	// (d.need).
	bad map[string]bool
}

func newDecoder() *decoder {
	return &decoder{set: Set{Positions: map[string]Pos{}}, defined: map[string]Pos{}, bad: map[string]bool{}}
}

func (d *decoder) finish() (Set, error) {
	d.checkSet()
	if err := d.probs.err(); err != nil {
		return Set{}, err
	}
	return d.set, nil
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.fileName, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.probs.add(d.pos(n), format, args...)
}

// rel is path without the document's prefix, as errors name a field.
func (d *decoder) rel(path string) string {
	if r, ok := strings.CutPrefix(path, d.prefix+"."); ok {
		return r
	}
	return path
}

// bigInt is an integer too large for YAML's int, which resolves it as a float.
var bigInt = regexp.MustCompile(`^[-+]?[0-9]+$`)

func (d *decoder) file(name string, data []byte) {
	d.fileName = name
	if len(data) > MaxSize {
		d.probs = append(d.probs, tooLarge(name).(*Error))
		return
	}
	if line, col, msg, bad := badCharacter(data); bad {
		d.probs.add(Pos{File: name, Line: line, Col: col}, "%s", msg)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// The parser cannot go on after a syntax error.
			line, col, msg := syntaxError(data, err)
			d.probs.add(Pos{File: name, Line: line, Col: col}, "YAML syntax: %s; check the indentation (spaces, no tabs), quotes and brackets", msg)
			return
		}
		d.document(&doc)
	}
}

// decodeNode reads the next document; a panic of the YAML library on
// hostile input becomes an error.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

// document decodes one document into the Set.
func (d *decoder) document(doc *yaml.Node) {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return
		}
		root = doc.Content[0]
	}
	if isNull(root) {
		return // an empty document, or one of only comments
	}
	if d.refuseAliases(root) {
		return
	}
	d.prefix = ""
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "a document is a mapping of apiVersion, kind, metadata and spec, not %s; see manifests/README.md", describe(root))
		return
	}
	keys := d.mapping(root, "", []string{"apiVersion", "kind", "metadata", "spec"})
	av, kind := keys["apiVersion"], keys["kind"]
	switch {
	case av == nil:
		d.errorf(root, "apiVersion is missing; add apiVersion: %s", APIVersion)
	case !d.isString(av, "apiVersion"):
	case av.Value != APIVersion:
		d.errorf(av, "apiVersion %q is not supported; write apiVersion: %s", av.Value, APIVersion)
	}
	kinds := []string{KindTenant, KindExposure, KindService}
	switch {
	case kind == nil:
		d.errorf(root, "kind is missing; add kind: Tenant, Exposure or Service")
		return
	case !d.isString(kind, "kind"):
		return
	case !slices.Contains(kinds, kind.Value):
		if s := suggest(kind.Value, kinds); s != "" {
			d.errorf(kind, "unknown kind %q; did you mean %s?", kind.Value, s)
		} else {
			d.errorf(kind, "unknown kind %q; write Tenant, Exposure or Service", kind.Value)
		}
		return
	}
	md, spec := keys["metadata"], keys["spec"]
	name := ""
	if md != nil && md.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(md.Content); i += 2 {
			if k, v := md.Content[i], md.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				name = v.Value
			}
		}
	}
	d.prefix = kind.Value + "/" + name
	d.set.Positions[d.prefix] = d.pos(root)

	var meta Meta
	if md == nil || isNull(md) {
		d.errorf(root, "metadata is missing; add metadata: {name: NAME}")
	} else {
		d.value(md, reflect.ValueOf(&meta).Elem(), d.prefix+".metadata")
	}
	meta.Pos = d.pos(root)
	d.checkMeta(kind.Value, &meta, md)

	if spec == nil || isNull(spec) {
		if kind.Value != KindTenant {
			d.errorf(root, "spec is missing; add the spec of the %s (see manifests/README.md)", kind.Value)
			return
		}
	}
	specPath := d.prefix + ".spec"
	switch kind.Value {
	case KindTenant:
		t := Tenant{Meta: meta}
		if spec != nil {
			d.value(spec, reflect.ValueOf(&t.Spec).Elem(), specPath)
		}
		d.checkTenant(&t)
		d.set.Tenants = append(d.set.Tenants, t)
	case KindExposure:
		x := Exposure{Meta: meta}
		d.value(spec, reflect.ValueOf(&x.Spec).Elem(), specPath)
		d.checkExposure(&x)
		d.set.Exposures = append(d.set.Exposures, x)
	case KindService:
		s := Service{Meta: meta}
		d.value(spec, reflect.ValueOf(&s.Spec).Elem(), specPath)
		d.checkService(&s)
		d.set.Services = append(d.set.Services, s)
	}
}

// refuseAliases reports every anchor and alias of the tree: the schema
// needs neither, and expanding aliases is how a small document becomes a
// huge one ("billion laughs").
func (d *decoder) refuseAliases(n *yaml.Node) bool {
	found := false
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		switch {
		case n.Kind == yaml.AliasNode:
			d.errorf(n, "alias *%s: aliases are not supported; write the value out", n.Value)
			found = true
			return
		case n.Anchor != "":
			d.errorf(n, "anchor &%s: anchors are not supported; remove it and write values out", n.Anchor)
			found = true
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return found
}

// mapping checks that n's keys are distinct known strings and returns
// their values. A key is known if it is in known.
func (d *decoder) mapping(n *yaml.Node, path string, known []string) map[string]*yaml.Node {
	vals := map[string]*yaml.Node{}
	keyAt := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.errorf(k, "%s: a field name must be a string, not %s", d.what(path), describe(k))
			continue
		}
		if first, dup := keyAt[k.Value]; dup {
			d.errorf(k, "field %q is given twice (first at line %d); remove one", k.Value, first.Line)
			continue
		}
		keyAt[k.Value] = k
		if !slices.Contains(known, k.Value) {
			d.unknown(k, path, known)
			continue
		}
		vals[k.Value] = v
	}
	return vals
}

func (d *decoder) unknown(k *yaml.Node, path string, known []string) {
	in := ""
	if r := d.rel(path); r != "" {
		in = " in " + r
	}
	if s := suggest(k.Value, known); s != "" {
		d.errorf(k, "unknown field %q%s; did you mean %q?", k.Value, in, s)
		return
	}
	d.errorf(k, "unknown field %q%s; the fields here are %s", k.Value, in, strings.Join(known, ", "))
}

// what is how an error names the field at path ("spec.hostPort"), or
// "document".
func (d *decoder) what(path string) string {
	if path == "" || path == d.prefix {
		return "document"
	}
	return d.rel(path)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe says what a node is, for "want X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", v)
	case "!!int", "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("%s %s", n.ShortTag(), v)
}

func (d *decoder) isString(n *yaml.Node, what string) bool {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return true
	}
	d.errorf(n, "%s: want a string, not %s%s", what, describe(n), quoteHint(n))
	return false
}

func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("; quote it: %q", n.Value)
	}
	return ""
}

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

// value decodes n into v (settable) by v's type, recording the position
// of path and of everything below it.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	d.set.Positions[path] = d.pos(n)
	before := len(d.probs)
	defer func() {
		if len(d.probs) > before {
			d.bad[path] = true
		}
	}()
	if isNull(n) {
		return // not set: the zero value
	}
	what := d.what(path)
	t := v.Type()
	pt := reflect.PointerTo(t)
	switch {
	case t.Kind() == reflect.Pointer:
		e := reflect.New(t.Elem())
		d.value(n, e.Elem(), path)
		v.Set(e)
		return
	case pt.Implements(jsonUnmarshaler) || t.Kind() == reflect.Interface:
		d.viaJSON(n, v, what)
		return
	case pt.Implements(textUnmarshaler):
		if d.isString(n, what) {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				d.errorf(n, "%s: %v", what, err)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping of fields, not %s", what, describe(n))
			return
		}
		fs := fieldsOf(t)
		known := make([]string, len(fs))
		for i, f := range fs {
			known[i] = f.name
		}
		for name, val := range d.mapping(n, path, known) {
			f, _ := lookupField(t, name)
			if f.status {
				// Type-checked, then dropped: get's output is valid input.
				d.value(val, reflect.New(f.typ).Elem(), path+"."+name)
				continue
			}
			d.value(val, v.FieldByIndex(f.index), path+"."+name)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s: want a list, not %s; write each item on a line starting with \"- \"", what, describe(n))
			return
		}
		if len(n.Content) == 0 {
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, not %s", what, describe(n))
			return
		}
		if t.Key().Kind() != reflect.String || len(n.Content) == 0 {
			if len(n.Content) > 0 {
				d.errorf(n, "%s: this field cannot be written in a manifest", what)
			}
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, e := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				d.errorf(k, "%s: a key must be a string, not %s%s", what, describe(k), quoteHint(k))
				continue
			}
			if line, dup := seen[k.Value]; dup {
				d.errorf(k, "%s: key %q is given twice (first at line %d); remove one", what, k.Value, line)
				continue
			}
			seen[k.Value] = k.Line
			ev := reflect.New(t.Elem()).Elem()
			d.value(e, ev, path+"["+k.Value+"]")
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.String:
		if d.isString(n, what) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, "%s: want true or false, not %s", what, describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.isNumber(n, what) {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, t.Bits())
		if err != nil {
			d.errorf(n, "%s: %s is not a whole number in range; write a decimal number", what, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.isNumber(n, what) {
			return
		}
		u, err := strconv.ParseUint(n.Value, 10, t.Bits())
		if err != nil {
			d.errorf(n, "%s: %s is not a whole number in range; write a decimal number of 0 or more", what, n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.errorf(n, "%s: want a number, not %s", what, describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.viaJSON(n, v, what)
	}
}

func (d *decoder) isNumber(n *yaml.Node, what string) bool {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float" && bigInt.MatchString(n.Value)) {
		return true // a bigInt is out of range: the caller says so
	}
	hint := ""
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if _, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			hint = "; remove the quotes"
		}
	}
	d.errorf(n, "%s: want a whole number, not %s%s", what, describe(n), hint)
	return false
}

// viaJSON decodes a value of a type that knows its own JSON form.
func (d *decoder) viaJSON(n *yaml.Node, v reflect.Value, what string) {
	var x any
	if err := n.Decode(&x); err != nil {
		d.errorf(n, "%s: %v", what, err)
		return
	}
	b, err := json.Marshal(x)
	if err == nil {
		err = json.Unmarshal(b, v.Addr().Interface())
	}
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
	}
}
