package sidecar

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// repeatedKey finds the first object key of a JSON body that repeats an
// earlier key of the same object, exactly or in another case:
// encoding/json matches field names without regard to case and lets the
// last one win, so {"addr":A,"Addr":B} would silently mean B, where a
// manifest refuses the same object. It returns the key, the key it
// repeats, and the key's JSON path ("binds[1].addr"). A body that is not
// valid JSON is left to the decoder: the walk stops at its first error.
func repeatedKey(b []byte) (key, first, path string, found bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var stack []keyFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", "", "", false
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 {
			f := &stack[n-1]
			switch {
			case f.object && f.wantKey:
				k, _ := tok.(string) // the decoder gives only strings here
				if prev, dup := f.add(k); dup {
					f.key = k
					return k, prev, keyPath(stack), true
				}
				f.key, f.wantKey = k, false
				continue
			case f.object:
				f.wantKey = true
			default:
				f.index++
			}
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, keyFrame{object: d == '{', wantKey: true, index: -1})
		}
	}
}

// keyFrame is an object or array repeatedKey is in.
type keyFrame struct {
	object  bool
	wantKey bool   // objects: the next token is a key
	key     string // objects: the latest key
	index   int    // arrays: the latest element's index
	// folded keys so far, in a slice while few (no map for the many
	// small objects of a body), then in a map (a body of 1 MiB may hold
	// an object of 100,000 keys).
	keys []string
	seen map[string]string
}

func (f *keyFrame) add(k string) (first string, dup bool) {
	fk := foldKey(k)
	if f.seen != nil {
		if first, dup = f.seen[fk]; !dup {
			f.seen[fk] = k
		}
		return first, dup
	}
	for i := 0; i < len(f.keys); i += 2 {
		if f.keys[i] == fk {
			return f.keys[i+1], true
		}
	}
	f.keys = append(f.keys, fk, k)
	if len(f.keys) > 32 {
		f.seen = make(map[string]string, len(f.keys))
		for i := 0; i < len(f.keys); i += 2 {
			f.seen[f.keys[i]] = f.keys[i+1]
		}
		f.keys = nil
	}
	return "", false
}

// keyPath is the JSON path of the innermost frame's latest key.
func keyPath(stack []keyFrame) string {
	var sb strings.Builder
	for _, f := range stack {
		if !f.object {
			sb.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(f.key)
	}
	return sb.String()
}

// foldKey maps keys that encoding/json takes for the same field name to
// one string: each rune to the smallest of its case-folding orbit, as
// encoding/json folds names (so "K", "k" and the Kelvin sign agree).
func foldKey(k string) string {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return strings.Map(smallestFold, k)
		}
	}
	return strings.ToUpper(k) // no copy when there is nothing to change
}

// smallestFold is the smallest rune of r's case-folding orbit.
func smallestFold(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
