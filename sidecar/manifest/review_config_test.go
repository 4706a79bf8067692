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
