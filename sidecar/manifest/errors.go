package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

var (
	// ErrInvalid classifies every problem found in a manifest.
	ErrInvalid = errors.New("nsproxy: invalid manifest")
	// ErrTooLarge: a file, or a directory's files together, exceed MaxSize.
	ErrTooLarge = errors.New("nsproxy: manifest too large")
	// ErrNoDocuments: Load found no *.yaml or *.yml file in a directory.
	ErrNoDocuments = errors.New("nsproxy: no manifest files")
)

// Error is one problem of a manifest: "FILE:LINE:COLUMN: what is wrong;
// what to do".
type Error struct {
	Pos Pos
	// Msg says what is wrong and what to do, without the position.
	Msg string
	// Err classifies it (ErrInvalid, ErrTooLarge).
	Err error
}

func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// problems collects the errors of a decode.
type problems []*Error

func (ps *problems) add(pos Pos, format string, args ...any) {
	*ps = append(*ps, &Error{Pos: pos, Err: ErrInvalid, Msg: fmt.Sprintf(format, args...)})
}

// err is every problem in file, line and column order, joined; nil if none.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// suggest is the known name closest to got (case-insensitive edit
// distance of at most a third of its length, at least 2), or "".
func suggest(got string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		d := distance(strings.ToLower(got), strings.ToLower(k))
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(got)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // a name that long is no typo of ours
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
