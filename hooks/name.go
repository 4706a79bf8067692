package hooks

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxNameLen is the longest namespace name the daemon accepts. Names are
// [A-Za-z0-9._:-]{1,MaxNameLen}, never "." or "..".
const MaxNameLen = 255

// ValidName reports whether name can name a network namespace:
// [A-Za-z0-9._:-]{1,MaxNameLen}, and neither "." nor "..". Such a name is
// never a path, so joining it to the netns directory stays in it. It is
// the one namespace-name rule: of the configuration, the registry, the
// control API, the hooks and PROXY NETNS TLVs.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	return true
}

// NameRule says ValidName's rule in words, for error messages.
const NameRule = `namespace names are 1 to 255 characters of A-Z a-z 0-9 . _ : - and not "." or ".."`

// SanitizeName maps every byte outside [A-Za-z0-9._:-] to '-'. It is the
// one name sanitiser of the hooks and the daemon: a name built from a
// container ID, an interface or a pod name goes through it. It does not
// cut: callers bound the length where they add their own parts.
func SanitizeName(s string) string {
	i := 0
	for i < len(s) && nameByte(s[i]) {
		i++
	}
	if i == len(s) {
		return s // the common case, and a check (s == SanitizeName(s)) allocates nothing
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if !nameByte(b[i]) {
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
