package netns

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoReservation: no accepted process holds a listening socket on the
// address (yet).
var ErrNoReservation = errors.New("nsproxy: no reserved listening socket found")

// AdoptListener returns a duplicate of a listening TCP socket bound to
// exactly addr in the daemon's own namespace and held by a process that
// owner accepts (pidfd_getfd; needs CAP_SYS_PTRACE over it). The process
// keeps its copy; connections are accepted by whoever calls accept, and the
// holder of a reservation never does. This is how a host port that a
// container runtime reserved for itself (podman's conmon holds one per -p
// mapping) is served without a second bind, which would fail.
func AdoptListener(addr netip.AddrPort, owner func(pid int) bool) (*net.TCPListener, error) {
	inodes, err := listeningInodes(addr)
	if err != nil {
		return nil, err
	}
	if len(inodes) == 0 {
		return nil, fmt.Errorf("%w: nothing listens on %s", ErrNoReservation, addr)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || !owner(pid) {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, f := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, f.Name()))
			if err != nil || !inodes[link] {
				continue
			}
			fd, _ := strconv.Atoi(f.Name())
			return stealListener(pid, fd, addr)
		}
	}
	return nil, fmt.Errorf("%w: %s is held by another process", ErrNoReservation, addr)
}

func stealListener(pid, fd int, addr netip.AddrPort) (*net.TCPListener, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt %s from pid %d: pidfd_open: %w", addr, pid, err)
	}
	defer unix.Close(pidfd)
	nfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt %s from pid %d: pidfd_getfd: %w", addr, pid, err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "adopted")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("adopt %s from pid %d: %w", addr, pid, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("adopt %s from pid %d: not a TCP listener", addr, pid)
	}
	return tl, nil
}

// listeningInodes returns "socket:[INODE]" for every LISTEN socket bound
// to addr, read from this thread's /proc/thread-self/net: a thread of this
// package may be in another namespace, so the read stays on one thread
// that is known to be home.
func listeningInodes(addr netip.AddrPort) (map[string]bool, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out := map[string]bool{}
	for _, file := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join("/proc/thread-self/net", file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			ap, err := parseProcAddr(fields[1])
			if err == nil && ap.Port() == addr.Port() && ap.Addr().Unmap() == addr.Addr().Unmap() {
				out["socket:["+fields[9]+"]"] = true
			}
		}
		f.Close()
	}
	return out, nil
}

// parseProcAddr decodes "0100007F:1F90" (IPv4) or 32 hex digits (IPv6):
// each 32-bit word is in host (little-endian) order.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, errors.New("no port")
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", h)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a, uint16(port)), nil
}
