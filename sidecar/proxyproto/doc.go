// Package proxyproto reads and writes PROXY protocol headers (v1 text and v2
// binary) for nsproxy's accept-proxy listeners and send-proxy / send-proxy-v2
// servers, and owns the policy for the v2 NETNS TLV (type 0x30).
//
// # What it owns
//
//   - ReadHeader: take exactly one PROXY header off a freshly accepted
//     connection, within a deadline and a size limit, and report what it said
//     as a Header with plain netip values.
//   - Parser: the same decision on bytes that arrive in pieces, for an event
//     loop that cannot block on a connection: Feed takes only the header's
//     bytes of what it is given (the rest is payload); end of stream and the
//     caller's timeout give ReadHeader's errors. FuzzParser checks that it
//     agrees with ReadHeader on every input and every split.
//   - The NETNS TLV policy: at most one NETNS TLV, whose value must satisfy
//     hooks.ValidName, the one namespace-name rule. A header breaking that is refused with
//     ErrBadNamespace or ErrMultipleNamespaces (HAProxy silently ignores such
//     values, or lets the last one win; we refuse and say why). Whether a valid
//     name may be used by the listener's tenant is not decided here: that is
//     the namespace registry's job, in the caller.
//   - AppendV1 and AppendV2: build headers byte for byte as HAProxy 2.6 does.
//   - Reason: a short, metric-friendly label for every error it returns.
//
// # What it must not do
//
// It must not hide the connection. The proxy engine copies bytes between two
// *net.TCPConn values with io.Copy so that the kernel's splice(2) is used; a
// wrapper conn or a user-space buffer holding bytes that follow the header
// would silently turn splice off or lose data. So ReadHeader returns no conn
// and consumes exactly the header's bytes from the socket, never one more:
//
//   - On sockets (anything implementing syscall.Conn on Linux) it first looks
//     at the pending bytes with recv(MSG_PEEK), as HAProxy does. When the whole
//     header is already there (the normal case: senders write it in one
//     segment) it then reads exactly its length: 2 system calls for a v1 or
//     v2 header.
//   - Otherwise (a header split across segments, a net.Pipe, a conn that is
//     not a socket) it reads the signature and a v1 line one byte at a time,
//     and a v2 header as its 16-byte fixed part followed by exactly the length
//     that part announces. Nothing is ever read "ahead".
//
// Only the exact header bytes are handed to github.com/pires/go-proxyproto,
// through a bufio.Reader over a bytes.Reader that holds nothing else, so the
// library's own buffering can never swallow payload. The library does the
// syntax work (signature, v1 tokens and address grammar, v2 command, family
// and address block); this package adds what it lacks or does differently:
//
//   - framing, deadline and MaxSize, as described above;
//   - v2 PROXY command with family UNSPEC: the library refuses it, the spec
//     lets receivers accept it and HAProxy does, so it is accepted as Local;
//   - v2 UDP and UNIX families are accepted but marked Local (their addresses
//     mean nothing to a TCP proxy); unassigned family bytes are refused, as the
//     spec requires;
//   - TLVs are split here, not by the library, because the library drops NOOP
//     values and copies every value; here values share one buffer and keep
//     their bytes;
//   - a CRC32C TLV is verified (spec §2.2.3; HAProxy does too);
//   - the effective v2 size limit is the smaller of MaxSize and 16 plus the
//     library's MaxV2HeaderSize, checked before the body is read.
//
// # Mixed address families when sending
//
// HAProxy 2.6 (make_proxy_line_v1 / make_proxy_line_v2) emits TCP4 / 0x11
// only when both ends are IPv4; when one end is IPv4 and the other IPv6 it
// emits TCP6 / 0x21 and writes the IPv4 end as an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d). When an address is unknown it emits "PROXY UNKNOWN\r\n"
// for v1 and, for v2, a LOCAL command with family UNSPEC (still followed by
// the NETNS TLV). AppendV1 and AppendV2 do the same. An address that is
// already IPv4-mapped IPv6 (what a dual-stack socket reports) counts as IPv6,
// as it does for HAProxy, whose socket family is then AF_INET6.
package proxyproto
