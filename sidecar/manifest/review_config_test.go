package manifest

import (
	"strings"
	"testing"
)

// A NUL byte, another control character or a bad UTF-8 byte on line 10 of
// a manifest gives an error with no line at all ("m.yaml: YAML syntax:
// control characters are not allowed; check the indentation ..."): the
// operator has to search the whole file for an invisible byte.
func TestReviewControlCharacterHasNoLine(t *testing.T) {
	good := tenant("a", "  limits: {maxConnections: 1}\n") // lines 1-6
	for name, bad := range map[string]string{
		"NUL":       "  # x\x00\n",
		"control":   "  # x\x01\n",
		"bad UTF-8": "  # x\xff\n",
	} {
		t.Run(name, func(t *testing.T) {
			src := good + "\n\n\n" + bad // the bad byte is on line 10
			_, err := Decode("m.yaml", []byte(src))
			if err == nil {
				t.Fatal("Decode accepted the file")
			}
			if !strings.HasPrefix(err.Error(), "m.yaml:10") {
				t.Fatalf("error does not point at line 10:\n%v", err)
			}
		})
	}
}

// A YAML syntax error is reported at the line where the enclosing block
// starts (yaml.v3's context mark: here "spec:" on line 5, or the line
// before a tab), not where the mistake is: an operator fixing line 5 of a
// long manifest finds nothing wrong there.
func TestReviewSyntaxErrorLine(t *testing.T) {
	// tenant() puts "spec:" on line 5; the spec lines start at line 6.
	tests := []struct {
		name string
		spec string
		line string // where the mistake is
	}{
		{"indentation", "  limits:\n    maxConnections: 1\n    maxListeners: 2\n   maxExposedPorts: 3\n", "m.yaml:9"},
		{"list item in a mapping", "  limits:\n    maxConnections: 1\n    maxListeners: 2\n  - x\n", "m.yaml:9"},
		{"tab", "  limits:\n    maxConnections: 1\n\tmaxListeners: 2\n", "m.yaml:8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("m.yaml", []byte(tenant("a", tt.spec)))
			if err == nil {
				t.Fatal("Decode accepted the file")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.line+":") && !strings.HasPrefix(msg, tt.line+" ") {
				t.Fatalf("error does not point at %s, where the mistake is:\n%v", tt.line, err)
			}
		})
	}
}
