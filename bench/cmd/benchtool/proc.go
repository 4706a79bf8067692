package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

func pidArg(args []string) (int, error) {
	if len(args) != 1 {
		return 0, errors.New("give one PID")
	}
	return strconv.Atoi(args[0])
}

// statTicks returns utime+stime+cutime+cstime of one process.
func statTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return 0, errors.New("short stat line")
	}
	var sum uint64
	for _, k := range f[11:15] {
		v, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += uint64(max(v, 0))
	}
	return sum, nil
}

// children lists the live children of pid over all its threads.
func children(pid int) []int {
	var out []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// cmdCPU prints the CPU seconds used so far by PID and its descendants.
func cmdCPU(args []string) error {
	pid, err := pidArg(args)
	if err != nil {
		return err
	}
	var total uint64
	seen := map[int]bool{}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		t, err := statTicks(p)
		if err != nil {
			if p == pid {
				return err
			}
			continue // exited meanwhile
		}
		total += t
		todo = append(todo, children(p)...)
	}
	fmt.Printf("%.2f\n", float64(total)/userHZ)
	return nil
}

// cmdMem prints "rss_kib pss_kib fds threads" of PID.
func cmdMem(args []string) error {
	pid, err := pidArg(args)
	if err != nil {
		return err
	}
	field := func(file, key string) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, key+":") {
				f := strings.Fields(line[len(key)+1:])
				if len(f) > 0 {
					v, _ := strconv.ParseInt(f[0], 10, 64)
					return v
				}
			}
		}
		return -1
	}
	rss := field("status", "VmRSS")
	if rss < 0 {
		return fmt.Errorf("no process %d", pid)
	}
	pss := field("smaps_rollup", "Pss")
	threads := field("status", "Threads")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err
	}
	fmt.Printf("%d %d %d %d\n", rss, pss, len(fds), threads)
	return nil
}

// cmdIperf prints "bytes bits_per_second" received, from iperf3 -J output.
func cmdIperf(args []string) error {
	if len(args) != 1 {
		return errors.New("give the iperf3 -J output file")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("iperf3 output: %w", err)
	}
	if r.Error != "" {
		return errors.New("iperf3: " + r.Error)
	}
	if r.End.SumReceived.Bytes <= 0 {
		return errors.New("iperf3: nothing received")
	}
	fmt.Printf("%.0f %.0f\n", r.End.SumReceived.Bytes, r.End.SumReceived.BitsPerSecond)
	return nil
}
