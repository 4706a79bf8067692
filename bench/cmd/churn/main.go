// Command churn is the container churn benchmark (issue 13): N containers
// (namespace, bridge veth, host-local address, one TCP hostPort each)
// added and deleted through cnitool with P parallel ADDs, on bridges whose
// chain ends in nsproxy-cni. bench/churn.sh builds and runs it; it prints
// the churn table and removes every namespace, bridge and file it made,
// also when interrupted.
//
//	churn -n 5000 -p 16 -add-samples 40 -restart
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsproxy/nsproxy/internal/churn"
)

func main() {
	var cfg churn.Config
	flag.IntVar(&cfg.N, "n", 1000, "containers")
	flag.IntVar(&cfg.Parallel, "p", 16, "parallel ADDs and DELs")
	flag.IntVar(&cfg.AddSamples, "add-samples", 40, "ADDs with and without nsproxy-cni, interleaved, for the ADD cost")
	flag.BoolVar(&cfg.Restart, "restart", true, "kill -9 the daemon with all live and time its successor")
	flag.StringVar(&cfg.Nsproxy, "nsproxy", "bin/nsproxy", "nsproxy binary")
	flag.StringVar(&cfg.Plugin, "plugin", "", "nsproxy-cni binary (default: next to -nsproxy)")
	flag.StringVar(&cfg.NullPlugin, "null-plugin", "", "a chained plugin that does nothing (bench/cmd/nullcni), timed beside nsproxy-cni")
	flag.StringVar(&cfg.CNITool, "cnitool", "/usr/local/bin/cnitool", "cnitool")
	flag.StringVar(&cfg.PluginDir, "cni-dir", envOr("NSPROXY_TEST_CNI_DIR", "/usr/local/lib/nsproxy-test-cni"), "reference bridge and host-local plugins")
	flag.StringVar(&cfg.Prefix, "prefix", "pbc", "prefix of namespace, bridge and network names")
	flag.IntVar(&cfg.Subnet, "subnet", 250, "bridges use 10.SUBNET.0.0/16")
	out := flag.String("out", "", "also write the table to this file")
	flag.Parse()
	if cfg.Plugin == "" {
		cfg.Plugin = filepath.Join(filepath.Dir(cfg.Nsproxy), "nsproxy-cni")
	}
	dir, err := os.MkdirTemp("", "nsproxy-churn-")
	if err != nil {
		fatal(err)
	}
	cfg.WorkDir = dir
	cfg.Log = os.Stderr
	r, err := churn.New(cfg)
	if err != nil {
		os.RemoveAll(dir)
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	load := loadavg()
	res, err := r.Run(ctx)
	if err != nil || res.Failures > 0 || len(res.Leftover) > 0 {
		if l := r.DaemonLog(); l != "" {
			fmt.Fprintf(os.Stderr, "nsproxy log (last lines):\n%s\n", tail(l, 20))
		}
	}
	r.Cleanup()
	if err != nil {
		fatal(err)
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	Table(w, res, load+" → "+loadavg())
	if res.Failures > 0 || len(res.Leftover) > 0 {
		os.Exit(1)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "churn:", err)
	os.Exit(1)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// Table prints the churn table in Markdown, with the targets of issue 13.
func Table(w io.Writer, r *churn.Result, load string) {
	fmt.Fprintf(w, "\nchurn: %d containers, %d parallel ADDs/DELs, %s, load %s\n\n", r.N, r.Parallel,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), load)
	fmt.Fprintln(w, "| measure | p50 | p99 | target |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(name string, ds []time.Duration, target string) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(w, "| %s (%d) | %s | %s | %s |\n", name, len(ds), ms(pct(ds, 50)), ms(pct(ds, 99)), target)
	}
	row("ADD bridge+host-local, one at a time", r.AddBare, "")
	row("ADD bridge+host-local+nsproxy-cni, one at a time", r.AddNsproxy, "")
	row("ADD bridge+host-local+nullcni (a Go plugin that does nothing), one at a time", r.AddNull, "")
	if len(r.AddBare) > 0 {
		fmt.Fprintf(w, "| nsproxy-cni's share of an ADD (median difference) | %s | | < 2 ms |\n",
			ms(pct(r.AddNsproxy, 50)-pct(r.AddBare, 50)))
		fmt.Fprintf(w, "| CPU of an ADD (cnitool and its plugins), without / with nsproxy-cni: medians | %s / %s | | |\n",
			ms(pct(r.AddBareCPU, 50)), ms(pct(r.AddNsproxyCPU, 50)))
		fmt.Fprintf(w, "| nsproxy-cni's share of an ADD's CPU (median difference) | %s | | |\n",
			ms(pct(r.AddNsproxyCPU, 50)-pct(r.AddBareCPU, 50)))
		if len(r.AddNull) > 0 {
			fmt.Fprintf(w, "| a do-nothing Go plugin's share of an ADD, wall / CPU (the floor for any Go plugin) | %s / %s | | |\n",
				ms(pct(r.AddNull, 50)-pct(r.AddBare, 50)), ms(pct(r.AddNullCPU, 50)-pct(r.AddBareCPU, 50)))
		}
	}
	row(fmt.Sprintf("ADD, %d parallel", r.Parallel), r.Add, "")
	row("expose: ADD returned → host port answers", r.Expose, "p99 < 5 ms")
	row(fmt.Sprintf("DEL, %d parallel", r.Parallel), r.Del, "")
	row("release: DEL returned → refused", r.Release, "")
	if r.N == 0 {
		return
	}
	fmt.Fprintf(w, "| daemon CPU per ADD, first / last %d ADDs | %s | %s | not growing |\n",
		max(r.N/10, 1), ms(r.CPUPerAddFirst), ms(r.CPUPerAddLast))
	per := func(a, b int64) float64 { return float64(b-a) / float64(r.N) }
	fmt.Fprintf(w, "| daemon RSS per live container | %.1f KiB | | ≤ 32 KiB |\n", per(r.Start.RSS, r.Live.RSS)/1024)
	fmt.Fprintf(w, "| daemon fds per live container | %.2f | | ≤ 3 |\n", per(int64(r.Start.FDs), int64(r.Live.FDs)))
	if r.Restart > 0 {
		fmt.Fprintf(w, "| restart (kill -9) → all %d serving | %s | | < 2 s |\n", r.N, ms(r.Restart))
	}
	us := []churn.Usage{r.Start, r.Live, r.AfterDel}
	names := fmt.Sprintf("start / %d live / after every DEL", r.N)
	if r.Warm.RSS > 0 {
		us = []churn.Usage{r.Start, r.Warm, r.Live, r.AfterDel}
		names = fmt.Sprintf("start / before the churn (the ADD comparison's containers came and went) / %d live / after every DEL", r.N)
	}
	cells := func(f func(churn.Usage) string) string {
		var out []string
		for _, u := range us {
			out = append(out, f(u))
		}
		return strings.Join(out, " / ")
	}
	fmt.Fprintf(w, "| daemon at %s | %s MiB, %s fds | | after DEL = start ± 10 %% |\n", names,
		cells(func(u churn.Usage) string { return fmt.Sprintf("%.1f", mib(u.RSS)) }),
		cells(func(u churn.Usage) string { return strconv.Itoa(u.FDs) }))
	fmt.Fprintf(w, "| of which anonymous + file pages; OS threads | %s MiB; %s | | |\n",
		cells(func(u churn.Usage) string { return fmt.Sprintf("%.1f + %.1f", mib(u.Anon), mib(u.File)) }),
		cells(func(u churn.Usage) string { return strconv.Itoa(u.Threads) }))
	if r.Start.Go.GCGoal > 0 && r.AfterDel.Go.GCGoal > 0 {
		fmt.Fprintf(w, "| anonymous pages: heap objects + heap spans held unused + goroutine stacks + the rest (runtime metadata, threads) | %s MiB | | |\n",
			cells(func(u churn.Usage) string {
				heap := u.Go.HeapLive + u.Go.HeapSpare + u.Go.Stacks
				return fmt.Sprintf("%.1f + %.1f + %.1f + %.1f (GC at %.1f)", mib(int64(u.Go.HeapLive)), mib(int64(u.Go.HeapSpare)),
					mib(int64(u.Go.Stacks)), mib(u.Anon-int64(heap)), mib(int64(u.Go.GCGoal)))
			}))
	}
	fmt.Fprintf(w, "| failed ADDs, DELs, exposures, releases | %d | | 0 |\n", r.Failures)
	fmt.Fprintf(w, "| left in the daemon after every DEL | %d | | 0 |\n", len(r.Leftover))
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s", e)
	}
	for i, l := range r.Leftover {
		if i == 10 {
			fmt.Fprintf(w, "\nleft: ... %d more", len(r.Leftover)-10)
			break
		}
		fmt.Fprintf(w, "\nleft: %s", l)
	}
	fmt.Fprintln(w)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
