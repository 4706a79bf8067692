package netns_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"golang.org/x/sys/unix"
)

func TestCheckSocket(t *testing.T) {
	testns.RequireRoot(t)
	blue := testns.New(t, "K")
	hb, err := netns.OpenPath(filepath.Join(netns.DefaultDir, blue), "blue")
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	hd, err := netns.OpenDefault()
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	fd, err := hb.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := hb.CheckSocket(fd); err != nil {
		t.Fatalf("socket made in blue: %v", err)
	}
	if err := hd.CheckSocket(fd); !errors.Is(err, netns.ErrForeignSocket) {
		t.Fatalf("blue's socket checked against the default namespace: %v", err)
	}
	id, err := netns.SocketIdentity(fd)
	if err != nil || id.Ino != hb.Identity().Ino || (id.Cookie != 0 && id.Cookie != hb.Identity().Cookie) {
		t.Fatalf("identity %v (%v), want %v", id, err, hb.Identity())
	}
}

func TestIdentitySame(t *testing.T) {
	for _, tc := range []struct {
		a, b netns.Identity
		want bool
	}{
		{netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, true},
		{netns.Identity{Dev: 1, Ino: 2}, netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, true},
		{netns.Identity{Cookie: 3}, netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, true},
		{netns.Identity{Dev: 1, Ino: 2, Cookie: 4}, netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, false},
		{netns.Identity{Dev: 1, Ino: 5, Cookie: 3}, netns.Identity{Dev: 1, Ino: 2, Cookie: 3}, false},
		{netns.Identity{}, netns.Identity{}, false},
		{netns.Identity{Cookie: 3}, netns.Identity{Ino: 2}, false},
	} {
		if got := tc.a.Same(tc.b); got != tc.want {
			t.Errorf("%v.Same(%v) = %v", tc.a, tc.b, got)
		}
	}
}
