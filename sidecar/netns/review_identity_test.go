package netns

import (
	"path/filepath"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestIdentityCookieSurvivesATransientFailure: the cookie is read once,
// at the first Identity, under a sync.Once. When that read fails for a
// passing reason (here: no fd left for the socket, EMFILE; a thread that
// cannot be made would do the same), the handle's Identity keeps Cookie 0
// for the rest of its life, while every other handle of the same
// namespace has the real cookie. Identity is a map key (the engine's own
// listeners, proxy/loop.go listenKey) compared with ==, so the two no
// longer match, and the loop check misses the daemon's own listener. On
// 9b46ebb the cookie was read at open, and a failure there failed the
// open (retried at the next resync), never leaving a half identity.
// Fails on a7a7d6c.
func TestIdentityCookieSurvivesATransientFailure(t *testing.T) {
	src := testns.Add(t, hxrName("ck"))
	p := filepath.Join("/var/run/netns", src)
	ref, err := OpenPath(p, "ref")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want := ref.Identity()
	if want.Cookie == 0 {
		t.Skip("kernel without SO_NETNS_COOKIE")
	}
	h, err := OpenPath(p, "h")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// No fd left while the first Identity runs.
	undo := testns.ExhaustFDs(t)
	first := h.Identity()
	undo()
	if first != want {
		t.Logf("first Identity with no fd left: %v (want %v)", first, want)
	}
	if got := h.Identity(); got != want {
		t.Fatalf("Identity once fds are back: %v, another handle of the same namespace: %v", got, want)
	}
}
