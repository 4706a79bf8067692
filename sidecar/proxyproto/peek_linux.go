//go:build linux

package proxyproto

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// peek copies the bytes already waiting on c's socket into p without
// consuming them, waiting (under c's read deadline) until at least one byte
// or the end of the stream is there; n == 0 means end of stream. ok is false
// when c offers no socket to peek at: the caller then reads byte-wise.
func peek(c net.Conn, p []byte) (n int, ok bool, err error) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return 0, false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var recvErr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, _, recvErr = syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK)
			if recvErr != syscall.EINTR {
				break
			}
		}
		// On EAGAIN the runtime waits for the socket to become readable and
		// calls us again. It never waits on partial data: framePeeked hands
		// an incomplete header over to byte-wise reads instead.
		return recvErr != syscall.EAGAIN
	})
	if err != nil {
		return 0, true, err // deadline, or c closed
	}
	switch {
	case recvErr == nil:
		return max(n, 0), true, nil
	case errors.Is(recvErr, syscall.ENOTSOCK), errors.Is(recvErr, syscall.EOPNOTSUPP):
		return 0, false, nil
	default:
		return 0, true, os.NewSyscallError("recvfrom", recvErr)
	}
}
