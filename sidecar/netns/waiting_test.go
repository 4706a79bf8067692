package netns

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nsproxy/nsproxy/internal/testns"
)

// TestWaitingEntry: a waiting entry keeps its name known and its tenant's,
// opens nothing (not the netns directory's file of that name, even one
// open under the name before), and a waiter gets the namespace once an
// entry with a path replaces it.
func TestWaitingEntry(t *testing.T) {
	pid := os.Getpid() % 10000
	dirNS := testns.Add(t, fmt.Sprintf("fxc%dwe", pid)) // the directory's file of the name
	ctr := testns.Add(t, fmt.Sprintf("fxc%dwc", pid))
	r, err := NewRegistry("", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetNames([]string{dirNS}); err != nil {
		t.Fatal(err)
	}
	old, err := r.Get(dirNS)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(Entry{Name: dirNS, Source: "manifest", Tenant: "t1", Waiting: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetNames(nil); err != nil {
		t.Fatal(err)
	}
	if !old.Closed() {
		t.Errorf("the directory's namespace stays open under the waiting name")
	}
	r.Resync()
	if _, err := r.Get(dirNS); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get of a waiting name = %v, want ErrUnavailable", err)
	}
	if err := r.Admit("t2", dirNS); !errors.Is(err, ErrOtherTenant) {
		t.Errorf("Admit of another tenant = %v, want ErrOtherTenant", err)
	}
	got := make(chan error, 1)
	go func() {
		h, err := r.Wait(t.Context(), dirNS)
		if err == nil && h.Path() != "/var/run/netns/"+ctr {
			err = fmt.Errorf("waited for %s, got %s", ctr, h.Path())
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := r.Register(Entry{Name: dirNS, Path: "/var/run/netns/" + ctr, Source: "cni", Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter of the name did not get the container's namespace")
	}
}
