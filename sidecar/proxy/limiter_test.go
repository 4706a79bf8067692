package proxy

import "testing"

// TestLimiterWakesOnePerSlot: a freed slot wakes the first waiting
// acceptor only, not every paused one; a wake-up its receiver cannot use
// goes on to the next (passOn); a limit change wakes all.
func TestLimiterWakesOnePerSlot(t *testing.T) {
	l := newLimiter(1)
	var woken []int
	waiter := func(i int) func(*limiter) {
		return func(from *limiter) {
			if from != l {
				t.Errorf("waiter %d woken by another limiter", i)
			}
			woken = append(woken, i)
		}
	}
	if !l.tryAcquire(waiter(0)) {
		t.Fatal("the first slot was refused")
	}
	for i := 1; i <= 3; i++ {
		if l.tryAcquire(waiter(i)) {
			t.Fatalf("waiter %d got a slot of a full limiter", i)
		}
	}
	l.release()
	if len(woken) != 1 || woken[0] != 1 {
		t.Fatalf("one release woke %v; want [1]", woken)
	}
	l.passOn() // waiter 1 could not use it
	if len(woken) != 2 || woken[1] != 2 {
		t.Fatalf("after passOn: %v; want [1 2]", woken)
	}
	if !l.tryAcquire(waiter(9)) { // waiter 2 takes the slot
		t.Fatal("the freed slot was refused")
	}
	l.passOn() // full again: nobody is woken
	if len(woken) != 2 {
		t.Fatalf("a full limiter woke %v", woken)
	}
	l.setLimit(5)
	if len(woken) != 3 || woken[2] != 3 {
		t.Fatalf("a limit change woke %v; want [1 2 3]", woken)
	}
}
