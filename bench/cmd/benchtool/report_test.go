package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeRaw writes raw result lines (round, config, metric, value).
func writeRaw(t *testing.T, lines ...string) *results {
	t.Helper()
	p := filepath.Join(t.TempDir(), "raw.tsv")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := readRaw(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A run with the 2-loop configuration: issue 14's targets are judged
// against HAProxy nbthread 1, the 2-loop pair gets its own ratio table and
// the idle fds are a column of the summary.
func TestReportIssue14Targets(t *testing.T) {
	r := writeRaw(t,
		"1\thaproxy-nbt1\tshort_cps\t10000",
		"1\tnsproxy\tshort_cps\t12000",
		"1\tnsproxy ns*\tshort_cps\t9000",
		"1\thaproxy-nbt1\tshort_cpu_us\t100",
		"1\tnsproxy\tshort_cpu_us\t95",
		"1\thaproxy-nbt1\tidle_rss_kib\t3.3",
		"1\tnsproxy\tidle_rss_kib\t0.1",
		"1\tnsproxy\tidle_fds\t2.0004", // 10,002 fds for 5,000 connections
		"1\thaproxy-nbt1\tidle_fds\t2",
		"1\thaproxy-nbt2\tshort_cps\t8000",
		"1\tnsproxy-nbt2\tshort_cps\t16000",
	)
	lines := targetLines(r)
	for _, want := range []string{
		"MET    short conn/s ≥ 1.1× HAProxy nbt1: 1.200× (12000 vs 10000)",
		"MISSED short conn/s with namespace * ≥ 1.1× HAProxy nbt1: 0.900× (9000 vs 10000)",
		"MISSED CPU µs per connection ≤ 0.9× HAProxy nbt1: 0.950× (95.0 vs 100)",
		"MET    RSS per idle connection ≤ 0.5× HAProxy nbt1: 0.030× (0.100 vs 3.30)",
		"MET    fds per idle connection ≤ 2: 2.00 fds",
		"MET    a 2-loop run (nbthread 2) beside the 1-loop run: 16000 conn/s",
		"n/a   short conn/s with send-proxy-v2 ≥ 1.1× HAProxy nbt1 (nsproxy send-proxy-v2 not measured)",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing target line %q in:\n%s", want, strings.Join(lines, "\n"))
		}
	}
	if i, j := slices.Index(r.configs, "nsproxy-nbt2"), slices.Index(r.configs, "haproxy-nbt2"); i < 0 || i > j {
		t.Errorf("configs %q: nsproxy-nbt2 must come before haproxy-nbt2", r.configs)
	}
	md := filepath.Join(t.TempDir(), "README.md")
	if err := writeMarkdown(r, nil, false, md); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	for _, want := range []string{
		"fds per idle connection fds |",
		"### Loop for loop (nsproxy nbthread 2 ÷ HAProxy nbthread 2)",
		"| nsproxy-nbt2 | - | - | - | 2.00× |", // 16000 / 8000 conn/s
		"## Targets of issue 14",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("README lacks %q:\n%s", want, b)
		}
	}
}

// Without the nbthread keyword there is no 2-loop run: the target says
// so and the loop-for-loop table is left out rather than printed empty.
func TestReportWithoutTwoLoopRun(t *testing.T) {
	r := writeRaw(t,
		"1\thaproxy-nbt1\tshort_cps\t10000",
		"1\tnsproxy\tshort_cps\t5000",
		"1\thaproxy-nbt2\tshort_cps\t8000",
	)
	if !slices.Contains(targetLines(r), "n/a   a 2-loop run (nbthread 2) beside the 1-loop run (nsproxy-nbt2 not measured)") {
		t.Errorf("targets:\n%s", strings.Join(targetLines(r), "\n"))
	}
	md := filepath.Join(t.TempDir(), "README.md")
	if err := writeMarkdown(r, nil, false, md); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	if strings.Contains(string(b), "Loop for loop") {
		t.Errorf("an empty loop-for-loop table was written:\n%s", b)
	}
	if !strings.Contains(string(b), "| nsproxy | - | - | - | 0.50× |") {
		t.Errorf("the ratio to HAProxy nbt1 is missing:\n%s", b)
	}
}
