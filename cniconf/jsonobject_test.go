package cniconf

import (
	"slices"
	"testing"
)

func TestParseJSONObject(t *testing.T) {
	tests := []struct {
		in      string
		keys    []string // nil: an error
		compact string
	}{
		{`{}`, []string{}, `{}`},
		{` {"b": 1, "a": [1, {"z": 2, "y": 3}], "c": "<&>"} `, []string{"b", "a", "c"}, `{"b":1,"a":[1, {"z": 2, "y": 3}],"c":"<&>"}`},
		{`{"é\u00e9": null}`, []string{"éé"}, `{"éé":null}`},
		{`{"a": 1, "a": 2}`, nil, ""},
		{`{"a": 1} {}`, nil, ""},
		{`{"a": 1`, nil, ""},
		{`[]`, nil, ""},
		{`"x"`, nil, ""},
		{``, nil, ""},
	}
	for _, tt := range tests {
		o, err := parseJSONObject([]byte(tt.in))
		if tt.keys == nil {
			if err == nil {
				t.Errorf("%s: parsed as %v", tt.in, o)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		var keys []string
		for _, m := range o {
			keys = append(keys, m.Key)
		}
		if !slices.Equal(keys, tt.keys) && !(len(keys) == 0 && len(tt.keys) == 0) {
			t.Errorf("%s: keys %q, want %q", tt.in, keys, tt.keys)
		}
		if got := string(o.compact()); got != tt.compact {
			t.Errorf("%s: compact %s, want %s", tt.in, got, tt.compact)
		}
	}
}

func TestJSONObjectEdit(t *testing.T) {
	o, err := parseJSONObject([]byte(`{"a": 1, "b": 2, "c": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	o = o.set("b", []byte(`"x"`)).set("d", []byte(`[]`)).del("a")
	if got := string(o.compact()); got != `{"b":"x","c":3,"d":[]}` {
		t.Errorf("edited: %s", got)
	}
	if v, ok := o.get("c"); !ok || string(v) != "3" {
		t.Errorf("get c = %s, %v", v, ok)
	}
	if _, ok := o.get("a"); ok {
		t.Error("a is still there")
	}
}

// FuzzParseJSONObject: what parses compacts to the same value with the
// same key order, and parses again.
func FuzzParseJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a": 1, "b": {"c": [true, null]}}`, `{"a": 1, "a": 2}`, `{"\u0000": "\ud800"}`, `{"a": 1e999}`, `{"a":1} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseJSONObject(data)
		if err != nil {
			return
		}
		c := o.compact()
		again, err := parseJSONObject(c)
		if err != nil {
			t.Fatalf("compact %s does not parse: %v", c, err)
		}
		if len(again) != len(o) {
			t.Fatalf("%d keys, then %d", len(o), len(again))
		}
		for i := range o {
			if o[i].Key != again[i].Key {
				t.Fatalf("key %d: %q, then %q", i, o[i].Key, again[i].Key)
			}
		}
		if !jsonEqual(data, c) {
			t.Fatalf("%s compacts to a different value %s", data, c)
		}
	})
}
