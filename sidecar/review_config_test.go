package sidecar

import (
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
)

// The control API takes the last of two equal keys, and a key in any case
// ("Addr", "WEIGHT"), silently: a body with "addr" twice creates a server
// at the second address. The same object in a manifest is refused ("field
// "addr" is given twice"), so the API is the one syntax where a duplicate
// is not an error.
func TestReviewAPIDuplicateKeysAccepted(t *testing.T) {
	for name, body := range map[string]string{
		"duplicate key":        `{"backend":"b","name":"s","addr":"10.0.0.1:80","addr":"10.0.0.2:80"}`,
		"same key, other case": `{"backend":"b","name":"s","addr":"10.0.0.1:80","Addr":"10.0.0.2:80"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var s api.Server
			if err := decodeBody([]byte(body), &s); err == nil {
				t.Fatalf("decodeBody(%s) = nil; want an error naming the repeated key (server got addr %q)", body, s.Addr)
			}
		})
	}
}
