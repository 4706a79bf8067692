package sidecar

import (
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
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

// A server without an address (the API body leaves "addr" out) is
// accepted: ParseServerAddr("") is 0.0.0.0 with the client's port, i.e.
// "forward to the client's own destination", the transparent-proxy mode.
// The manifest refuses the same server ("addr is missing").
func TestReviewAPIServerWithoutAddrAccepted(t *testing.T) {
	s, err := serverModel(api.Server{Backend: "b", Name: "s"}, apiOrigin(serverKey("b", "s")), config.BuiltinDefaults().Server)
	if err == nil {
		t.Fatalf("serverModel without addr = nil error; the server was created with Addr %v, PortMode %v (forwards to the client's destination)", s.Addr, s.PortMode)
	}
}
