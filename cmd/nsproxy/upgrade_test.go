package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSuccessorOptions(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{"run", "--takeover"}},
		{[]string{"-f", "a.cfg"}, []string{"run", "-f", "a.cfg", "--takeover"}},
		{[]string{"--takeover", "-f", "a.cfg"}, []string{"run", "--takeover", "-f", "a.cfg"}},
		{[]string{"-takeover=true"}, []string{"run", "-takeover=true"}},
		{[]string{"--after-handover", "wait"}, []string{"run", "--after-handover", "wait", "--takeover"}},
	} {
		got := successorOptions(tc.in)
		if got == nil || !slices.Equal(got.Args, tc.want) || got.Binary == "" {
			t.Errorf("successorOptions(%q) = %+v, want args %q", tc.in, got, tc.want)
		}
	}
}

func TestRunAndUpgradeUsage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"run", "--after-handover", "later"}, 2, "use exit or wait"},
		{[]string{"run", "stray.cfg"}, 2, `unexpected argument "stray.cfg"`},
		{[]string{"upgrade", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"upgrade", "--socket", sock}, 1, "nsproxy upgrade:"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.err)
		}
	}
}
