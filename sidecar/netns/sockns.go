package netns

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrForeignSocket: a socket does not belong to the namespace it was
// supposed to live in.
var ErrForeignSocket = errors.New("nsproxy: socket belongs to another network namespace")

// SocketIdentity is the identity of the network namespace a socket was
// created in: its netns cookie and, through SIOCGSKNS (needs
// CAP_NET_ADMIN), the namespace file's dev/ino. Fields it cannot read stay
// zero; an error means it could read neither.
func SocketIdentity(fd int) (Identity, error) {
	var id Identity
	cookie, cerr := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if cerr == nil {
		id.Cookie = cookie
	}
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err == nil {
		var st unix.Stat_t
		serr := unix.Fstat(nsfd, &st)
		unix.Close(nsfd)
		if serr == nil {
			id.Dev, id.Ino = st.Dev, st.Ino
		}
	}
	if id == (Identity{}) {
		return id, fmt.Errorf("namespace of socket: %w", errors.Join(cerr, err))
	}
	return id, nil
}

// Same reports whether two identities, both taken while their namespaces
// were held, name the same namespace. Fields unknown (zero) on either side
// are not compared, but at least one pair must be known and equal.
func (id Identity) Same(o Identity) bool {
	known := false
	if id.Cookie != 0 && o.Cookie != 0 {
		if id.Cookie != o.Cookie {
			return false
		}
		known = true
	}
	if id.Ino != 0 && o.Ino != 0 {
		if id.Ino != o.Ino || id.Dev != o.Dev {
			return false
		}
		known = true
	}
	return known
}

// CheckSocket returns nil when the socket fd was created inside h's
// namespace, else an error wrapping ErrForeignSocket.
func (h *Handle) CheckSocket(fd int) error {
	got, err := SocketIdentity(fd)
	if err != nil {
		return err
	}
	if id := h.Identity(); !got.Same(id) {
		return fmt.Errorf("%w: socket in %s, %s is %s", ErrForeignSocket, got, h.Label(), id)
	}
	return nil
}
