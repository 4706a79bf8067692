package config

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitLine(t *testing.T) {
	env := map[string]string{"ADDR": "10.0.0.1", "PORT": "80", "SPACED": "a b", "EMPTY": ""}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	tests := []struct {
		name    string
		line    string
		want    []string
		wantErr string // substring of the problem; empty: success
	}{
		{name: "empty", line: "", want: nil},
		{name: "blanks only", line: " \t \r", want: nil},
		{name: "comment only", line: "# a comment", want: nil},
		{name: "indented comment", line: "\t  # indented", want: nil},
		{name: "tabs and spaces", line: "\tserver  s1\t10.0.0.1:80 ", want: []string{"server", "s1", "10.0.0.1:80"}},
		{name: "CRLF", line: "bind :80\r", want: []string{"bind", ":80"}},
		{name: "trailing comment", line: "bind :80 # listen", want: []string{"bind", ":80"}},
		{name: "comment inside word", line: "bind :80#x", want: []string{"bind", ":80"}},
		{name: "double quotes group", line: `a "b c" d`, want: []string{"a", "b c", "d"}},
		{name: "single quotes group", line: `a 'b c' d`, want: []string{"a", "b c", "d"}},
		{name: "quote inside word", line: `ab"c d"e`, want: []string{"abc de"}},
		{name: "empty quotes make an empty word", line: `a "" b`, want: []string{"a", "", "b"}},
		{name: "hash in double quotes", line: `a "#b" c`, want: []string{"a", "#b", "c"}},
		{name: "hash in single quotes", line: `a '#b'`, want: []string{"a", "#b"}},
		{name: "single quote in double quotes", line: `"it's"`, want: []string{"it's"}},
		{name: "double quote in single quotes", line: `'say "x"'`, want: []string{`say "x"`}},
		{name: "escaped space", line: `a\ b c`, want: []string{"a b", "c"}},
		{name: "escaped hash", line: `a\#b`, want: []string{"a#b"}},
		{name: "escaped backslash", line: `a\\b`, want: []string{`a\b`}},
		{name: "escaped double quote", line: `a\"b`, want: []string{`a"b`}},
		{name: "escaped single quote", line: `a\'b`, want: []string{`a'b`}},
		{name: "escape inside double quotes", line: `"a\"b"`, want: []string{`a"b`}},
		{name: "no escape inside single quotes", line: `'a\ b'`, want: []string{`a\ b`}},
		{name: "control escapes", line: `a\tb\nc\rd`, want: []string{"a\tb\nc\rd"}},
		{name: "hex escape", line: `\x41\x6a`, want: []string{"Aj"}},
		{name: "other backslash kept", line: `a\1`, want: []string{`a\1`}},
		{name: "trailing backslash kept", line: `a\`, want: []string{`a\`}},
		{name: "dollar escaped in double quotes", line: `"\$ADDR"`, want: []string{"$ADDR"}},
		{name: "backslash dollar outside quotes", line: `\$ADDR`, want: []string{`\$ADDR`}},
		{name: "var in double quotes", line: `bind "$ADDR:${PORT}"`, want: []string{"bind", "10.0.0.1:80"}},
		{name: "var not expanded outside quotes", line: `bind $ADDR`, want: []string{"bind", "$ADDR"}},
		{name: "var not expanded in single quotes", line: `'$ADDR'`, want: []string{"$ADDR"}},
		{name: "var with spaces stays one word", line: `"$SPACED"`, want: []string{"a b"}},
		{name: "unset var is empty", line: `x"$UNSET"y`, want: []string{"xy"}},
		{name: "unset var alone is an empty word", line: `a "$UNSET" b`, want: []string{"a", "", "b"}},
		{name: "var name ends at non-name byte", line: `"$ADDR.x"`, want: []string{"10.0.0.1.x"}},
		{name: "default for unset var", line: `"${UNSET-1.2.3.4}"`, want: []string{"1.2.3.4"}},
		{name: "default ignored for set var", line: `"${ADDR-1.2.3.4}"`, want: []string{"10.0.0.1"}},
		{name: "default ignored for empty var", line: `"${EMPTY-x}"`, want: []string{""}},

		{name: "unterminated double quote", line: `bind "10.0.0.1:80`, wantErr: "unterminated double quote"},
		{name: "unterminated single quote", line: `bind '10.0.0.1:80`, wantErr: "unterminated single quote"},
		{name: "bad hex escape", line: `\x4`, wantErr: `invalid \x escape`},
		{name: "bad hex digit", line: `\xzz`, wantErr: `invalid \x escape`},
		{name: "dollar without name", line: `"cost $5"`, wantErr: `"$" must start a variable name`},
		{name: "dollar at end", line: `"a$"`, wantErr: `"$" must start a variable name`},
		{name: "brace without name", line: `"${}"`, wantErr: `"$" must start a variable name`},
		{name: "unterminated brace", line: `"${ADDR"`, wantErr: `unterminated "${"`},
		{name: "unsupported brace form", line: `"${ADDR[*]}"`, wantErr: `unterminated "${"`},
		{name: "unterminated brace with default", line: `"${ADDR-x`, wantErr: `unterminated "${"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := splitLine(tt.line, lookup)
			if tt.wantErr != "" {
				if !strings.Contains(problem, tt.wantErr) {
					t.Fatalf("splitLine(%q) problem = %q, want it to contain %q (words %q)", tt.line, problem, tt.wantErr, got)
				}
				return
			}
			if problem != "" {
				t.Fatalf("splitLine(%q) problem = %q", tt.line, problem)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("splitLine(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}
