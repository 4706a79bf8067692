package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Diff says what applying new over old would change, one line each, in a
// stable order (kinds Tenant, Exposure, Service; names sorted; fields in
// schema order):
//
//   - Tenant/b                                      a document added
//   - Exposure/x                                    a document removed
//     ~ Tenant/a: spec.frontends[web].maxconn: 100 -> 200
//     ~ Tenant/a: spec.frontends[api]: added          a named element
//     ~ Tenant/a: spec.select[1]: removed {network: n2}
//     ~ Tenant/a: metadata.labels[team]: <unset> -> "ops"
//     ~ Tenant/a: spec.backends[b].servers: order s1, s2 -> s2, s1
//
// Lists of named objects (namespaces, frontends, backends, servers) are
// compared by name (their order only where it matters: servers), other
// lists by position. Strings are quoted, values
// that are not set print as <unset>, whole values as flow YAML. Positions
// status fields and fields implied by where an object is listed (a
// frontend's tenant, a server's backend) are not compared. changed reports whether there is a
// line; text ends with a newline unless empty.
func Diff(old, new Set) (text string, changed bool) {
	var lines []string
	diffKind(&lines, KindTenant, old.Tenants, new.Tenants, func(t Tenant) string { return t.Meta.Name })
	diffKind(&lines, KindExposure, old.Exposures, new.Exposures, func(x Exposure) string { return x.Meta.Name })
	diffKind(&lines, KindService, old.Services, new.Services, func(x Service) string { return x.Meta.Name })
	if len(lines) == 0 {
		return "", false
	}
	return strings.Join(lines, "\n") + "\n", true
}

func diffKind[T any](lines *[]string, kind string, old, new []T, name func(T) string) {
	om, nm := map[string]T{}, map[string]T{}
	for _, o := range old {
		om[name(o)] = o
	}
	for _, n := range new {
		nm[name(n)] = n
	}
	names := make([]string, 0, len(om)+len(nm))
	for k := range om {
		names = append(names, k)
	}
	for k := range nm {
		if _, ok := om[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		o, inOld := om[k]
		n, inNew := nm[k]
		switch {
		case !inNew:
			*lines = append(*lines, "- "+kind+"/"+k)
		case !inOld:
			*lines = append(*lines, "+ "+kind+"/"+k)
		default:
			var changes []string
			diffValue(&changes, "", reflect.ValueOf(o), reflect.ValueOf(n))
			for _, c := range changes {
				*lines = append(*lines, "~ "+kind+"/"+k+": "+c)
			}
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// diffValue appends "PATH: change" for every difference of a and b (of
// the same type).
func diffValue(out *[]string, path string, a, b reflect.Value) {
	t := a.Type()
	switch t.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, path+": "+show(a)+" -> "+show(b))
			}
			return
		}
		if k := t.Elem().Kind(); k == reflect.Struct || k == reflect.Slice || k == reflect.Map {
			diffValue(out, path, a.Elem(), b.Elem())
		} else if !reflect.DeepEqual(a.Elem().Interface(), b.Elem().Interface()) {
			*out = append(*out, path+": "+showSet(a.Elem())+" -> "+showSet(b.Elem())) // set, even to zero
		}
		return
	case reflect.Struct:
		if t == reflect.TypeOf(Pos{}) {
			return
		}
		for _, f := range fieldsOf(t) {
			if f.status || f.implied || t == reflect.TypeOf(Meta{}) && f.name == "name" {
				continue // the name is the document's key
			}
			diffValue(out, join(path, f.name), a.FieldByIndex(f.index), b.FieldByIndex(f.index))
		}
		return
	case reflect.Slice:
		if key := nameField(t.Elem()); key != nil && uniqueNames(a, key) && uniqueNames(b, key) {
			diffNamed(out, path, a, b, key)
			return
		}
		for i := 0; i < max(a.Len(), b.Len()); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= b.Len():
				*out = append(*out, p+": removed "+show(a.Index(i)))
			case i >= a.Len():
				*out = append(*out, p+": added "+show(b.Index(i)))
			default:
				diffValue(out, p, a.Index(i), b.Index(i))
			}
		}
		return
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, m := range []reflect.Value{a, b} {
			for _, k := range m.MapKeys() {
				keys[k.String()] = k
			}
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for _, k := range sorted {
			av, bv := a.MapIndex(keys[k]), b.MapIndex(keys[k])
			p := path + "[" + k + "]"
			switch {
			case !av.IsValid():
				*out = append(*out, p+": <unset> -> "+show(bv))
			case !bv.IsValid():
				*out = append(*out, p+": "+show(av)+" -> <unset>")
			default:
				diffValue(out, p, av, bv)
			}
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path+": "+show(a)+" -> "+show(b))
	}
}

func uniqueNames(s reflect.Value, key []int) bool {
	seen := map[string]bool{}
	for i := 0; i < s.Len(); i++ {
		n := s.Index(i).FieldByIndex(key).String()
		if n == "" || seen[n] {
			return false
		}
		seen[n] = true
	}
	return true
}

// diffNamed compares two lists of named elements by name.
func diffNamed(out *[]string, path string, a, b reflect.Value, key []int) {
	index := func(s reflect.Value) map[string]int {
		m := map[string]int{}
		for i := 0; i < s.Len(); i++ {
			m[s.Index(i).FieldByIndex(key).String()] = i
		}
		return m
	}
	ai, bi := index(a), index(b)
	names := make([]string, 0, len(ai)+len(bi))
	for n := range ai {
		names = append(names, n)
	}
	for n := range bi {
		if _, ok := ai[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var aOrder, bOrder []string // the common names, in each list's order
	for i := 0; i < a.Len(); i++ {
		if n := a.Index(i).FieldByIndex(key).String(); hasKey(bi, n) {
			aOrder = append(aOrder, n)
		}
	}
	for i := 0; i < b.Len(); i++ {
		if n := b.Index(i).FieldByIndex(key).String(); hasKey(ai, n) {
			bOrder = append(bOrder, n)
		}
	}
	if orderMatters[path[strings.LastIndexByte(path, '.')+1:]] && !slices.Equal(aOrder, bOrder) {
		*out = append(*out, path+": order "+strings.Join(aOrder, ", ")+" -> "+strings.Join(bOrder, ", "))
	}
	for _, n := range names {
		i, inA := ai[n]
		j, inB := bi[n]
		p := path + "[" + n + "]"
		switch {
		case !inB:
			*out = append(*out, p+": removed")
		case !inA:
			*out = append(*out, p+": added")
		default:
			diffValue(out, p, a.Index(i), b.Index(j))
		}
	}
}

// orderMatters names the lists of named elements whose order is part of
// their meaning: servers (balance first, round-robin order). The order of
// namespaces, frontends and backends changes nothing.
var orderMatters = map[string]bool{"servers": true}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// show prints a value for Diff: strings quoted, <unset> for what is not
// set, lists and mappings as flow YAML.
func show(v reflect.Value) string {
	switch {
	case !v.IsValid() || v.Kind() != reflect.Bool && v.IsZero():
		return "<unset>"
	case v.Kind() == reflect.Pointer:
		return showSet(v.Elem()) // set, even to a zero value
	}
	return showSet(v)
}

func showSet(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		return show(v)
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	}
	n, err := valueNode(v)
	if err != nil {
		return fmt.Sprintf("%v", v.Interface())
	}
	flow(n)
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Sprintf("%v", v.Interface())
	}
	return strings.TrimSpace(string(b))
}

func flow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		flow(c)
	}
}
