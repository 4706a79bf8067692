package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: no input panics; an accepted input encodes to YAML that
// decodes to an equal Set and encodes to the same bytes again.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../../manifests/examples/*.yaml")
	more, _ := filepath.Glob("testdata/diff/*/*.yaml")
	for _, name := range append(seeds, more...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"---\n---\n",
		tenant("a", "  select: [{network: 'n*'}]\n"),
		"a: &x [*x]\n", // a recursive alias
		"a: [[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]\n",
		head + "kind: Tenant\nmetadata: {name: a, labels: {\"\\0\": \"\\t\\u2028\"}}\n",
		head + "kind: Exposure\nmetadata: {name: x, tenant: t}\nspec: {containerPort: 1, hostPort: 65535, select: {labels: {a: \"\"}}}\n",
		head + "kind: Tenant\nmetadata: {name: a}\nspec: {backends: [{name: b, servers: [{name: s, addr: x, weight: 0}]}]}\n",
		"!!binary aGVsbG8=\n",
		"? [a]\n: b\n",
		"a: 1\r\nb: \"\x00\"\n",
		"a:\n  b: [x,\n   y]\n  c: 'd\n   e'\n   f: \u00e9: g\n",
		"a: 1\r---\rb: |\r  c\r d: 1\u2028e\n",
		"\ufeffa: \u0085\u2028\xff\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode("f.yaml", data)
		if err != nil {
			return
		}
		out, err := Encode(s)
		if err != nil {
			t.Fatalf("Encode of an accepted Set: %v\ninput:\n%s", err, data)
		}
		back, err := Decode("f.yaml", out)
		if err != nil {
			t.Fatalf("Encode's output is refused: %v\ninput:\n%s\noutput:\n%s", err, data, out)
		}
		if !equalSets(s, back) {
			t.Fatalf("round trip changed the Set\ninput:\n%s\noutput:\n%s\nbefore %#v\nafter  %#v", data, out, stripped(s), stripped(back))
		}
		again, err := Encode(back)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Encode is not stable (%v):\n%s\nthen\n%s", err, out, again)
		}
		if text, changed := Diff(s, back); changed {
			t.Fatalf("Diff of a round trip:\n%s", text)
		}
	})
}
