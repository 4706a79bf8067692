package manifest

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// syntaxError is where, and what, a YAML syntax error of data is.
//
// yaml.v3 names the line of its context mark, where the enclosing block
// or flow collection starts ("spec:" for a bad indentation ten lines
// below it), and sometimes no line at all; its problem mark is not
// exported. So the mistake is found by parsing prefixes of data: it is on
// the first line at which a prefix fails with the same error, and at the
// start of the word at which that line does. A prefix cut inside a
// multi-line quoted string or flow collection fails too, but with
// another message or context line, so it does not count. The search
// parses at most searchBudget bytes of prefixes (a daemon decodes what
// tenants send); past that, the library's line is kept.
func syntaxError(data []byte, err error) (line, col int, msg string) {
	line, msg = splitYAMLError(err)
	starts := lineStarts(data)
	budget, exhausted := searchBudget, false
	same := func(end int) bool {
		if budget -= end; budget < 0 {
			exhausted = true
			return false
		}
		l, m := splitYAMLError(parseAll(data[:end]))
		return l == line && m == msg
	}
	// The mistake is on the context line or after it.
	lineEnd := func(k int) int { // the end of line k (1-based)
		if k < len(starts) {
			return starts[k]
		}
		return len(data)
	}
	k := firstTrue(max(line, 1), len(starts), func(k int) bool { return same(lineEnd(k)) })
	if k == 0 || exhausted {
		return line, 0, msg
	}
	// The column: the first character of the line at which a prefix
	// fails the same way, moved back to the start of its word (a key cut
	// before its colon reads as another mistake).
	text := data[starts[k-1]:lineEnd(k)]
	whole := func(c int) int { // text[:c] extended to a whole character
		for c < len(text) && !utf8.RuneStart(text[c]) {
			c++
		}
		return c
	}
	c := firstTrue(1, len(text), func(c int) bool { return same(starts[k-1] + whole(c)) })
	if c == 0 || exhausted {
		return k, 0, msg
	}
	w := whole(c) - 1
	for w > 0 && !utf8.RuneStart(text[w]) {
		w--
	}
	if !isBlank(text[w]) {
		for w > 0 && !isBlank(text[w-1]) {
			w--
		}
	}
	return k, utf8.RuneCount(text[:w]) + 1, msg
}

// searchBudget bounds the bytes syntaxError parses: a few times
// MaxSize, so a bad manifest costs at most a few times a good one.
const searchBudget = 4 * MaxSize

func isBlank(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// splitYAMLError is the line yaml.v3 gives (0: none) and its message.
func splitYAMLError(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	msg, line := err.Error(), 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return line, strings.TrimPrefix(msg, "yaml: ")
}

// parseAll parses every document of data; nil at the end of the input.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := decodeNode(dec, &n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// firstTrue is the smallest k in [lo, hi] with f(k), searched from lo in
// doubling steps and then by halves (f is taken to stay true once it
// is, which holds from the mistake on; searching from lo finds one near
// lo first); 0 if f(hi) is false.
func firstTrue(lo, hi int, f func(int) bool) int {
	if lo > hi {
		return 0
	}
	prev, k := lo-1, lo
	for step := 1; ; step *= 2 {
		if f(k) {
			break
		}
		if k == hi {
			return 0
		}
		prev, k = k, min(k+step, hi)
	}
	// f(prev) false (or prev = lo-1), f(k) true: halve what is between.
	return prev + 1 + sort.Search(k-prev-1, func(i int) bool { return f(prev + 1 + i) })
}

// lineStarts is the byte offset of each line of data, lines ending as
// the YAML parser ends them (LF, CR, CRLF, NEL, LS, PS).
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i := 0; i < len(data); {
		n := breakLen(data[i:])
		if n == 0 {
			i++
			continue
		}
		i += n
		if i < len(data) {
			starts = append(starts, i)
		}
	}
	return starts
}

// breakLen is the length of the line break b starts with, or 0.
func breakLen(b []byte) int {
	switch {
	case len(b) == 0:
		return 0
	case b[0] == '\r' && len(b) > 1 && b[1] == '\n':
		return 2
	case b[0] == '\r' || b[0] == '\n':
		return 1
	case bytes.HasPrefix(b, []byte("\u0085")):
		return 2
	case bytes.HasPrefix(b, []byte("\u2028")) || bytes.HasPrefix(b, []byte("\u2029")):
		return 3
	}
	return 0
}
