package manifest

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// jsonDuration knows its own JSON form, as an API type may.
type jsonDuration struct{ time.Duration }

func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
func (d *jsonDuration) UnmarshalJSON(b []byte) (err error) {
	var s string
	if err = json.Unmarshal(b, &s); err == nil {
		d.Duration, err = time.ParseDuration(s)
	}
	return err
}

// Fields of types with their own text or JSON form (which the API's types
// may gain) decode and print through it.
func TestCustomTypes(t *testing.T) {
	type object struct {
		Addr    netip.AddrPort `json:"addr"`    // a TextUnmarshaler
		Timeout jsonDuration   `json:"timeout"` // a json.Unmarshaler
		Any     any            `json:"any,omitempty"`
		Score   float64        `json:"score,omitempty"`
		Count   uint16         `json:"count,omitempty"`
		Embedded
	}
	decode := func(src string) (object, error) {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		d := newDecoder()
		var o object
		d.value(n.Content[0], reflect.ValueOf(&o).Elem(), "X/x.spec")
		return o, d.probs.err()
	}
	o, err := decode("{addr: '10.0.0.1:80', timeout: 1m30s, any: {a: [1]}, score: 1.5, count: 7, inner: x}")
	if err != nil {
		t.Fatal(err)
	}
	want := object{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Timeout: jsonDuration{90 * time.Second},
		Any: map[string]any{"a": []any{1.0}}, Score: 1.5, Count: 7, Embedded: Embedded{Inner: "x"}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("decoded %#v, want %#v", o, want)
	}
	n, err := valueNode(reflect.ValueOf(o))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := yaml.Marshal(n)
	if back, err := decode(string(out)); err != nil || !reflect.DeepEqual(back, o) {
		t.Errorf("round trip: %v\n%s\n%#v", err, out, back)
	}
	_, err = decode("{addr: nonsense, timeout: 5 parsecs, count: 70000}")
	for _, want := range []string{"spec.addr: ", "spec.timeout: ", "spec.count: 70000 is not a whole number in range"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v lack %q", err, want)
		}
	}
}

// Embedded is flattened, as encoding/json does.
type Embedded struct {
	Inner string `json:"inner,omitempty"`
}
