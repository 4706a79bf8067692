// Command benchtool holds the small helpers of bench/run.sh: a 1-byte echo
// server, an idle-connection opener, readiness probes, /proc readers and the
// report writer. It is built by bench/run.sh and is not part of nsproxy.
//
//	benchtool echo -l ADDR                     echo server (run it inside the server namespace)
//	benchtool idle -addr A -n N -ready FILE    open N connections, echo 1 byte on each, hold them until SIGTERM
//	benchtool probe -addr A [-http PATH|-echo] retry until one request through A works
//	benchtool cpu PID                          utime+stime (+ waited-for children) of PID's process tree, seconds
//	benchtool mem PID                          rss_kib pss_kib fds threads
//	benchtool iperf FILE                       bytes and bits/s received, from iperf3 -J output
//	benchtool report -raw F -out DIR [...]     medians, ratios, TSV, Markdown and gnuplot data
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool echo|idle|probe|cpu|mem|iperf|report ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"echo": cmdEcho, "idle": cmdIdle, "probe": cmdProbe, "cpu": cmdCPU, "mem": cmdMem,
		"iperf": cmdIperf, "report": cmdReport,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
