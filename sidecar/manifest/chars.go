package manifest

import (
	"fmt"
	"unicode/utf8"
)

// badCharacter finds the first byte sequence YAML 1.2 does not allow in a
// stream (section 5.1: C0 controls other than tab, LF and CR; DEL; C1
// controls other than NEL; surrogates, U+FFFE, U+FFFF; bad UTF-8) and
// says where it is. yaml.v3's reader refuses them too, but its error has
// no line, and an invisible byte in a long file is not found by eye.
// Line and column count as the YAML parser does (breakLen; a column is
// a character). Input starting with a
// UTF-16 byte order mark is left to the parser.
func badCharacter(data []byte) (line, col int, msg string, found bool) {
	if len(data) >= 2 && (data[0] == 0xff && data[1] == 0xfe || data[0] == 0xfe && data[1] == 0xff) {
		return 0, 0, "", false
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		if n := breakLen(data[i:]); n > 0 {
			line, col, i = line+1, 1, i+n
			continue
		}
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\t' || c >= 0x20 && c != 0x7f:
				col++
			default:
				return line, col, fmt.Sprintf("the control character 0x%02x is not allowed in YAML; remove the byte 0x%02x", c, c), true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return line, col, fmt.Sprintf("invalid UTF-8; remove the byte 0x%02x (manifests are UTF-8 text)", c), true
		case r >= 0x80 && r <= 0x9f || r == 0xfffe || r == 0xffff:
			return line, col, fmt.Sprintf("the character U+%04X is not allowed in YAML; remove the bytes % x", r, data[i:i+n]), true
		default:
			col++
		}
		i += n
	}
	return 0, 0, "", false
}
