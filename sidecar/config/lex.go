package config

import (
	"os"
	"strings"
)

// splitLine splits one configuration line into words the way HAProxy's
// parse_line does for configuration files:
//
//   - words are separated by unquoted, unescaped blanks;
//   - an unquoted, unescaped '#' starts a comment, even inside a word;
//   - double quotes group words and expand $NAME, ${NAME} and
//     ${NAME-default} (an unset variable expands to the empty string);
//   - single quotes group words and expand nothing, not even backslashes;
//   - outside single quotes a backslash escapes ' ', '#', '\\', '"', '\”
//     (and '$' inside double quotes), and \t, \n, \r and \xHH stand for
//     their bytes; any other backslash is kept as is.
//
// Quotes may appear in the middle of a word (ab"c d" is the word "abc d").
// lookupEnv is os.LookupEnv outside tests. On failure splitLine returns a
// message saying what is wrong and what to do; the caller adds the position.
func splitLine(line string, lookupEnv func(string) (string, bool)) (words []string, problem string) {
	var (
		cur    strings.Builder
		inWord bool // a word has started, possibly empty ("")
		squote bool
		dquote bool
	)
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	i := 0
scan:
	for i < len(line) {
		c := line[i]
		switch {
		case c == '#' && !squote && !dquote:
			break scan
		case c == '"' && !squote:
			dquote = !dquote
			inWord = true
			i++
		case c == '\'' && !dquote:
			squote = !squote
			inWord = true
			i++
		case c == '\\' && !squote:
			inWord = true
			n, msg := unescape(line[i:], dquote, &cur)
			if msg != "" {
				return nil, msg
			}
			i += n
		case isBlank(c) && !squote && !dquote:
			endWord()
			i++
		case c == '$' && dquote:
			inWord = true
			n, msg := expandVar(line[i:], lookupEnv, &cur)
			if msg != "" {
				return nil, msg
			}
			i += n
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	switch {
	case dquote:
		return nil, `unterminated double quote; close it with " or escape it as \"`
	case squote:
		return nil, `unterminated single quote; close it with ' or escape it as \'`
	}
	endWord()
	return words, ""
}

// isBlank reports whether c separates words. '\r' is one, which makes CRLF
// line ends harmless.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// unescape writes the meaning of the backslash sequence at the start of s
// to out and returns how many bytes of s it used.
func unescape(s string, dquote bool, out *strings.Builder) (int, string) {
	if len(s) < 2 {
		out.WriteByte('\\') // a trailing backslash is literal, as in HAProxy
		return 1, ""
	}
	switch s[1] {
	case ' ', '\\', '#', '\'', '"':
		out.WriteByte(s[1])
		return 2, ""
	case '$':
		if dquote {
			out.WriteByte('$')
			return 2, ""
		}
	case 't':
		out.WriteByte('\t')
		return 2, ""
	case 'n':
		out.WriteByte('\n')
		return 2, ""
	case 'r':
		out.WriteByte('\r')
		return 2, ""
	case 'x':
		if len(s) < 4 || !isHex(s[2]) || !isHex(s[3]) {
			return 0, `invalid \x escape; write two hexadecimal digits, as in \x41`
		}
		out.WriteByte(hexVal(s[2])<<4 | hexVal(s[3]))
		return 4, ""
	}
	// Not an escape sequence: the backslash stands for itself.
	out.WriteByte('\\')
	return 1, ""
}

// expandVar writes the value of the variable reference at the start of s
// ("$NAME", "${NAME}" or "${NAME-default}") to out and returns how many
// bytes of s it used.
func expandVar(s string, lookupEnv func(string) (string, bool), out *strings.Builder) (int, string) {
	i := 1 // past '$'
	brace := i < len(s) && s[i] == '{'
	if brace {
		i++
	}
	start := i
	if i >= len(s) || !(isLetter(s[i]) || s[i] == '_') {
		return 0, `"$" must start a variable name inside double quotes; write $NAME or ${NAME}, or \$ for a literal dollar sign`
	}
	for i < len(s) && (isLetter(s[i]) || isDigit(s[i]) || s[i] == '_') {
		i++
	}
	value, set := lookupEnv(s[start:i])
	if brace {
		switch {
		case i < len(s) && s[i] == '}':
			i++
		case i < len(s) && s[i] == '-':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, `unterminated "${"; close the variable reference with }`
			}
			if !set {
				value = s[i+1 : i+end]
			}
			i += end + 1
		default:
			return 0, `unterminated "${"; close the variable reference with } (only ${NAME} and ${NAME-default} are supported)`
		}
	}
	out.WriteString(value)
	return i, ""
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isHex(c byte) bool    { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

func hexVal(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// osLookupEnv is the environment used outside tests.
var osLookupEnv = os.LookupEnv
