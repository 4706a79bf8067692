package sidecar

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/nsproxy/nsproxy/sidecar/manifest"
	"golang.org/x/sys/unix"
)

// Access to the control socket per tenant. Root, the daemon's own user and
// the --socket-group may do everything (allowedPeer). Any other peer may use
// the tenant endpoints only (apply, delete and diff of manifests, GET
// tenants), and only for the tenants whose spec.access names its uid, its
// primary gid or one of its supplementary groups. Who the peer is comes
// from the socket (SO_PEERCRED, SO_PEERGROUPS), taken by the kernel when it
// connected: nothing the peer sends, and no /proc file a reused pid could
// change. Where SO_PEERGROUPS is missing (kernels before 4.13) the peer has
// no supplementary groups: its uid and primary gid count, nothing else.

// access is what one control request may do.
type access struct {
	all     bool     // root, the daemon's user or the socket group
	tenants []string // otherwise: the tenants whose spec.access names the peer
	who     string   // "uid 1000 gid 1000 groups 2000,2001", for messages
}

// may reports whether the request may touch tenant's documents.
func (a access) may(tenant string) bool {
	return a.all || slices.Contains(a.tenants, tenant)
}

// forbidden says what the peer may do instead.
func (a access) forbidden(what, tenant string) error {
	if tenant == "" {
		return fmt.Errorf("permission denied: %s names no tenant (metadata.tenant), and only root may change such documents: %w", what, errForbidden)
	}
	mine := "no tenant"
	if len(a.tenants) > 0 {
		mine = "tenant " + strings.Join(a.tenants, ", ")
	}
	return fmt.Errorf("permission denied: %s belongs to tenant %q, and %s may only change %s (spec.access of the Tenant): %w",
		what, tenant, a.who, mine, errForbidden)
}

// peerIdentity is who the peer of a control connection is.
type peerIdentity struct {
	uid, gid uint32
	groups   []uint32 // supplementary groups
}

func (p peerIdentity) String() string {
	s := fmt.Sprintf("uid %d gid %d", p.uid, p.gid)
	if len(p.groups) > 0 {
		g := make([]string, len(p.groups))
		for i, x := range p.groups {
			g[i] = strconv.FormatUint(uint64(x), 10)
		}
		s += " groups " + strings.Join(g, ",")
	}
	return s
}

// peerGroups reads SO_PEERGROUPS: the peer's supplementary groups when it
// connected (Linux 4.13). x/sys's GetsockoptString cannot be used: it cuts
// the gid array at the first zero byte.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]byte, 64*4)
	for {
		n := uint32(len(buf))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == unix.ERANGE && int(n) > len(buf) {
			buf = make([]byte, n)
			continue
		}
		if e != 0 {
			return nil, e
		}
		out := make([]uint32, n/4)
		for i := range out {
			out[i] = binary.NativeEndian.Uint32(buf[4*i:])
		}
		return out, nil
	}
}

// memberOf reports whether the peer is named by a tenant's access: a user
// (name or uid) or a group (name or gid) the peer has as its primary or a
// supplementary group. Names are resolved at each check, so a group
// created after the manifest was applied counts; a name that does not
// resolve matches nobody.
func memberOf(p peerIdentity, a manifest.Access) bool {
	for _, u := range a.Users {
		if id, ok := resolveID(u, func(n string) (string, error) {
			x, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return x.Uid, nil
		}); ok && id == p.uid {
			return true
		}
	}
	for _, g := range a.Groups {
		id, ok := resolveID(g, func(n string) (string, error) {
			x, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return x.Gid, nil
		})
		if ok && (id == p.gid || slices.Contains(p.groups, id)) {
			return true
		}
	}
	return false
}

// resolveID takes a numeric id as it is and looks a name up.
func resolveID(s string, lookup func(string) (string, error)) (uint32, bool) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), true
	}
	id, err := lookup(s)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err == nil
}

// accessOf is what the peer may do: everything (allowedPeer), or the
// tenants whose access names it, from the tenants applied now.
func (d *Daemon) accessOf(cred *unix.Ucred, groups []uint32, group int) access {
	if cred == nil {
		return access{who: "an unknown peer"}
	}
	p := peerIdentity{uid: cred.Uid, gid: cred.Gid, groups: groups}
	a := access{who: p.String(), all: allowedPeer(cred, groups, group)}
	if a.all {
		return a
	}
	d.mu.Lock()
	tenants := d.state.Manifests.Tenants // replaced whole by a change, never modified in place
	d.mu.Unlock()
	for _, t := range tenants {
		if memberOf(p, t.Spec.Access) {
			a.tenants = append(a.tenants, t.Meta.Name)
		}
	}
	slices.Sort(a.tenants)
	return a
}

// allowedPeer: root, the daemon's own user, or a member of group (primary
// or supplementary).
func allowedPeer(cred *unix.Ucred, groups []uint32, group int) bool {
	if cred == nil {
		return false
	}
	if cred.Uid == 0 || int(cred.Uid) == os.Geteuid() {
		return true
	}
	if group < 0 {
		return false
	}
	return int(cred.Gid) == group || slices.Contains(groups, uint32(group))
}
