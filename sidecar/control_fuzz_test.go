package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// requestTypes are the bodies the control API decodes.
func requestTypes() map[string]func() any {
	return map[string]func() any{
		"namespace":  func() any { return new(api.Namespace) },
		"frontend":   func() any { return new(api.Frontend) },
		"backend":    func() any { return new(api.Backend) },
		"server":     func() any { return new(api.Server) },
		"attachment": func() any { return new(api.Attachment) },
		"gc":         func() any { return new(api.GCRequest) },
		"manifests":  func() any { return new(api.ManifestRequest) },
	}
}

func TestDecodeBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		err  string // "" means accepted
	}{
		{`{"name":"a","path":"/x"}`, ""},
		{"  {\"name\":\"a\"}\r\n\t ", ""},
		{`null`, ""},
		{``, "empty"},
		{`   `, "empty"},
		{`{"name":"a"} x`, "data after the JSON value at byte 13"},
		{`{"name":"a"}{"name":"b"}`, "data after the JSON value at byte 12"},
		{`{"name":"a"}}`, "data after the JSON value"},
		{`{"name":"a"} null`, "data after the JSON value"},
		{`{"name":"a","colour":"red"}`, `unknown field "colour"`},
		{`{"name":1}`, "cannot unmarshal"},
		{`{"name":"a"`, "unexpected EOF"},
		{`[]`, "cannot unmarshal"},
		{`{"name":"a","name":"b"}`, `name: field "name" is given twice`},
		{`{"name":"a","NaMe":"b"}`, `NaMe: field "NaMe" repeats "name"`},
		{`{"name":"a","path":"/x","\u004eame":"b"}`, `Name: field "Name" repeats "name"`},
		{`{"name":"a","path":{"x":[1,{"b":1,"c":[{}],"B":2}]}}`, `path.x[1].B: field "B" repeats "b"`},
		{`{"name":"a","path":[[],{"k":1,"\u212a":2}]}`, "path[1].\u212a: field \"\u212a\" repeats \"k\""},
		{`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}`, `unknown field "a"`}, // one key per object
	} {
		var n api.Namespace
		err := decodeBody([]byte(tc.body), &n)
		var oe *objectError
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one saying %q", tc.body, err, tc.err)
		case err != nil && !errors.As(err, &oe):
			t.Errorf("%q: %v is not a 400 objectError", tc.body, err)
		}
	}
}

// FuzzDecodeBody: for every request type, a body is accepted exactly when
// it is one valid JSON value (white space around it) that strict
// unmarshalling takes; an accepted value re-encodes to a body that is
// accepted again, unchanged.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","path":"/proc/1/ns/net"}`, `{"name":"a","pid":1}`,
		`{"name":"f","binds":[{"addr":"127.0.0.1:80","namespace":"n"}],"backend":"b","maxconn":10}`,
		`{"name":"b","servers":[{"name":"s","addr":"10.0.0.1:80","check":true}]}`,
		`{"containerID":"c","ifname":"eth0","netns":"/x","portMappings":[{"hostPort":80,"containerPort":80}],"metadata":{"k":"v"}}`,
		`{"valid":[{"containerID":"c","ifname":"eth0"}]}`,
		`{"files":[{"name":"a.yaml","data":"apiVersion: nsproxy.io/v1alpha1\nkind: Tenant\n"}]}`,
		`{"name":"a"} x`, `{"name":"a"}{"name":"b"}`, `{"name":"a"}}`, `{"name":"a"}` + "\n", ``, `null`, `[]`,
		`{"name":"a","name":"b"}`, `{"NAME":"a"}`, `{"name":"\ud800"}`,
		`{"name":"a","Name":"b"}`, `{"name":"b","servers":[{"name":"s"},{"name":"t","addr":"x","ADDR":"y"}]}`,
		`{"valid":[{"containerID":"c","metadata":{"k":"v","\u212a":"w"}}]}`,
	} {
		f.Add([]byte(s))
	}
	types := requestTypes()
	f.Fuzz(func(t *testing.T, body []byte) {
		for kind, mk := range types {
			v := mk()
			err := decodeBody(body, v)
			strict := json.NewDecoder(bytes.NewReader(body))
			strict.DisallowUnknownFields()
			want := json.Valid(body) && strict.Decode(mk()) == nil && !hasRepeatedKey(body)
			if (err == nil) != want {
				t.Fatalf("%s %q: decodeBody error %v, but valid single value and strict decode: %v", kind, body, err, want)
			}
			if err != nil {
				var oe *objectError
				if !errors.As(err, &oe) {
					t.Fatalf("%s %q: %v is not a 400 objectError", kind, body, err)
				}
				continue
			}
			again, merr := json.Marshal(v)
			if merr != nil {
				t.Fatalf("%s %q: accepted value does not encode: %v", kind, body, merr)
			}
			v2 := mk()
			if err := decodeBody(again, v2); err != nil {
				t.Fatalf("%s %q: re-encoded %q refused: %v", kind, body, again, err)
			}
			if third, _ := json.Marshal(v2); !bytes.Equal(third, again) {
				t.Fatalf("%s %q: %q re-encodes as %q", kind, body, again, third)
			}
		}
	})
}

// hasRepeatedKey is the fuzz oracle of repeatedKey, found another way: a
// recursive walk comparing each object's keys pairwise with
// strings.EqualFold (the equality encoding/json matches names by).
func hasRepeatedKey(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func() bool // reads one value; true: a key repeats in it
	walk = func() bool {
		tok, _ := dec.Token()
		repeated := false
		switch tok {
		case json.Delim('{'):
			var keys []string
			for dec.More() {
				k, _ := dec.Token()
				if slices.ContainsFunc(keys, func(s string) bool { return strings.EqualFold(s, k.(string)) }) {
					repeated = true
				}
				keys = append(keys, k.(string))
				repeated = walk() || repeated
			}
			dec.Token() // }
		case json.Delim('['):
			for dec.More() {
				repeated = walk() || repeated
			}
			dec.Token() // ]
		}
		return repeated
	}
	return walk()
}
