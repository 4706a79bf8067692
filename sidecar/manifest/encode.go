package manifest

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

var (
	textMarshaler = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	jsonMarshaler = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

// Encode prints s as YAML documents that Decode reads back to an equal Set:
// Tenants, then Exposures, then Services, each in s's order; fields in
// schema order, map keys sorted, fields that are not set left out, status
// fields never printed. The same Set always prints the same bytes.
func Encode(s Set) ([]byte, error) {
	if len(s.Tenants)+len(s.Exposures)+len(s.Services) == 0 {
		return []byte{}, nil // the YAML encoder cannot close an empty stream
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	doc := func(kind string, meta, spec any) error {
		n := mapNode()
		addPair(n, "apiVersion", strNode(APIVersion))
		addPair(n, "kind", strNode(kind))
		m, err := valueNode(reflect.ValueOf(meta))
		if err != nil {
			return err
		}
		addPair(n, "metadata", m)
		if sv := reflect.ValueOf(spec); !sv.IsZero() {
			sn, err := valueNode(sv)
			if err != nil {
				return err
			}
			addPair(n, "spec", sn)
		}
		return enc.Encode(n)
	}
	for _, t := range s.Tenants {
		if err := doc(KindTenant, t.Meta, t.Spec); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Meta.Name, err)
		}
	}
	for _, x := range s.Exposures {
		if err := doc(KindExposure, x.Meta, x.Spec); err != nil {
			return nil, fmt.Errorf("exposure %q: %w", x.Meta.Name, err)
		}
	}
	for _, x := range s.Services {
		if err := doc(KindService, x.Meta, x.Spec); err != nil {
			return nil, fmt.Errorf("service %q: %w", x.Meta.Name, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mapNode() *yaml.Node                          { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }
func strNode(s string) *yaml.Node                  { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
func addPair(m *yaml.Node, k string, v *yaml.Node) { m.Content = append(m.Content, strNode(k), v) }

// valueNode is v as a node; fields of structs that are zero are left out,
// but a value given (a list's element, a pointer's target) always prints.
func valueNode(v reflect.Value) (*yaml.Node, error) {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return valueNode(v.Elem())
	case t.Implements(jsonMarshaler) || t.Kind() == reflect.Interface:
		return viaJSONNode(v)
	case t.Implements(textMarshaler):
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, err
		}
		return strNode(string(b)), nil
	}
	switch t.Kind() {
	case reflect.Struct:
		n := mapNode()
		for _, f := range fieldsOf(t) {
			fv := v.FieldByIndex(f.index)
			if f.status || f.implied || fv.IsZero() {
				continue
			}
			c, err := valueNode(fv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			addPair(n, f.name, c)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := 0; i < v.Len(); i++ {
			c, err := valueNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map with %s keys cannot be printed", t.Key())
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		n := mapNode()
		for _, k := range keys {
			c, err := valueNode(v.MapIndex(reflect.ValueOf(k).Convert(t.Key())))
			if err != nil {
				return nil, err
			}
			addPair(n, k, c)
		}
		return n, nil
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v.Uint(), 10)}, nil
	case reflect.Float32, reflect.Float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v.Float(), 'g', -1, t.Bits())}, nil
	}
	return viaJSONNode(v)
}

// viaJSONNode prints a value of a type that knows its own JSON form (JSON
// is YAML).
func viaJSONNode(v reflect.Value) (*yaml.Node, error) {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	n := doc.Content[0]
	clearStyle(n)
	return n, nil
}

// clearStyle prints JSON's flow mappings and quoted strings as YAML's
// block style where YAML allows it.
func clearStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		clearStyle(c)
	}
}
