package sidecar

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsproxy/nsproxy/internal/testns"
	"github.com/nsproxy/nsproxy/sidecar/netns"
)

// TestStatsEnterNoNamespace: since 829d469 the handles read their cookie at the
// first Identity, so that a restart with thousands of containers pays no
// setns for cookies nobody needs. But Registry.Status now reads every
// handle's Identity, and the callers that only count (the stats answer,
// and the metrics scrape's RegistrySize, len(Registry().Status())) or
// only look at Available (tenant views) call it: the first metrics scrape
// after a start enters every namespace, one after the other, and the
// laziness saves nothing. Registry.Count exists for counting. Fails on
// a7a7d6c: after stats(), a handle nobody asked the identity of has its
// cookie (a handle closed before its first Identity has none). It fails on
// 9b46ebb too, by design there: every open read the cookie.
func TestStatsEnterNoNamespace(t *testing.T) {
	testns.RequireRoot(t)
	ns := testns.Add(t, fmt.Sprintf("hxr%dst", os.Getpid()%10000))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "n.cfg")
	if err := os.WriteFile(cfg, []byte("frontend web\n    bind 127.0.0.1:23001\n    default_backend web\nbackend web\n    server s1 127.0.0.1:23002\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{ConfigFiles: []string{cfg}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.reg.Close()
	if err := d.reg.Register(netns.Entry{Name: ns, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	h, err := d.reg.Get(ns)
	if err != nil {
		t.Fatal(err)
	}
	if st := d.stats(); st.Namespaces != 1 {
		t.Fatalf("stats count %d namespaces, want 1", st.Namespaces)
	}
	h.Close()
	if id := h.Identity(); id.Cookie != 0 {
		t.Fatalf("stats() read the cookie of %s (entered the namespace) to count it: %v", ns, id)
	}
}
