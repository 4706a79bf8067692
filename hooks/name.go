package hooks

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxNameLen is the longest namespace name the daemon accepts. Names are
// [A-Za-z0-9._:-]{1,MaxNameLen}, never "." or "..".
const MaxNameLen = 255

// SanitizeName maps every byte outside [A-Za-z0-9._:-] to '-'. It is the
// one name rule of the hooks and the daemon: a name built from a container
// ID, an interface or a pod name goes through it. It does not cut: callers
// bound the length where they add their own parts.
func SanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !nameByte(c) {
			b[i] = '-'
		}
	}
	return string(b)
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

// KeyHash is a hex digest of k, the same for the same key on every host
// and run: names derived from it are deterministic, and different keys get
// different digests (NUL, which keys cannot hold, separates the parts).
func KeyHash(k AttachmentKey) string {
	sum := sha256.Sum256([]byte(k.ContainerID + "\x00" + k.IfName))
	return hex.EncodeToString(sum[:])
}

// WithSuffix returns name-suffix, with name cut so that the result is at
// most max bytes long: the suffix, which makes the name unique, always
// survives.
func WithSuffix(name, suffix string, max int) string {
	if keep := max - len(suffix) - 1; len(name) > keep {
		if keep < 0 {
			keep = 0
		}
		name = name[:keep]
	}
	return name + "-" + suffix
}
