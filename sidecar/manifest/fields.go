package manifest

import (
	"reflect"
	"strings"
	"sync"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// field is one field of a schema struct as the manifest spells it: the
// name of its json tag (the manifest's field names are the control API's).
type field struct {
	name  string
	index []int
	typ   reflect.Type
	// status: printed by the daemon (`get`), accepted on input so that its
	// output is valid manifest YAML, but never part of a Set: the decoder
	// drops it, the encoder and Diff skip it.
	status bool
	// implied: said by where the object is listed (a frontend's tenant, a
	// server's backend); checked by the decoder, which clears it, and
	// skipped by the encoder and Diff.
	implied bool
}

// statusFields are the fields of the API's object types that report state
// rather than ask for it ("Status (ignored on create)" in sidecar/api), and
// Source, which the daemon sets.
var statusFields = map[reflect.Type]map[string]bool{
	reflect.TypeOf(api.Frontend{}): {"source": true, "listeners": true, "current": true, "total": true, "bytesIn": true, "bytesOut": true},
	reflect.TypeOf(api.Backend{}):  {"source": true},
	reflect.TypeOf(api.Server{}):   {"source": true, "up": true, "downReason": true, "active": true, "total": true, "connectErrors": true},
}

// impliedFields are said by where an object is listed in a Tenant.
var impliedFields = map[reflect.Type]map[string]bool{
	reflect.TypeOf(api.Frontend{}): {"tenant": true},
	reflect.TypeOf(api.Backend{}):  {"tenant": true},
	reflect.TypeOf(api.Server{}):   {"backend": true},
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf lists the fields of struct type t in declaration order, with
// embedded structs flattened as encoding/json does.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fs = append(fs, f)
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		name := tag
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{name: name, index: []int{i}, typ: sf.Type, status: statusFields[t][name], implied: impliedFields[t][name]})
	}
	fieldCache.Store(t, fs)
	return fs
}

// lookupField finds the field named name in struct type t.
func lookupField(t reflect.Type, name string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// nameField is the index of a struct's string field "name", which keys the
// elements of a list (frontends, backends, servers, namespaces), or nil.
func nameField(t reflect.Type) []int {
	if t.Kind() != reflect.Struct {
		return nil
	}
	if f, ok := lookupField(t, "name"); ok && f.typ.Kind() == reflect.String {
		return f.index
	}
	return nil
}
