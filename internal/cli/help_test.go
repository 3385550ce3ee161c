package cli

import (
	"strings"
	"testing"
)

// TestHelpVersionAndFlagOrder: help that was asked for goes to stdout with
// exit 0 (before: stderr); vmlab help COMMAND is COMMAND -h (before: the
// general usage); vmlab version prints the version (before: an unknown
// command); run takes flags after its files, as go test does (before: the
// flags were taken for files). None of these boots anything.
func TestHelpVersionAndFlagOrder(t *testing.T) {
	checkCommands(t, []commandCase{
		{[]string{"help"}, exitOK, "commands:", ""},
		{[]string{"-h"}, exitOK, "vmlab help COMMAND", ""},
		{[]string{"help", "run"}, exitOK, "usage: vmlab run [flags] FILE.star", ""},
		{[]string{"run", "-h"}, exitOK, "-junit file", ""},
		{[]string{"help", "cache"}, exitOK, "usage: vmlab cache [list|clean]", ""},
		{[]string{"help", "frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"run", "-nosuchflag", "x.star"}, exitUsage, "", "flag provided but not defined: -nosuchflag"},
		{[]string{"version"}, exitOK, "vmlab ", ""},
		{[]string{"run", "testdata/pass.star", "-list", "-run", "hostname"}, exitOK, "pass.test_hostname\n", ""},
		{[]string{"run", "testdata/pass.star", "-run", "nomatch", "-list"}, exitUsage, "", `no test matches -run "nomatch"`},
		{[]string{"run", "-list", "--", "-list"}, exitUsage, "", "open -list"},
	})
}

// commandCase is a vmlab command line and what it must do.
type commandCase struct {
	args           []string
	code           int
	stdout, stderr string // each must hold this; "" must be empty
}

// checkCommands runs each case in this process, as a subtest.
func checkCommands(t *testing.T, tests []commandCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(tt.args...)
			if code != tt.code {
				t.Errorf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range []struct{ name, got, want string }{{"stdout", stdout, tt.stdout}, {"stderr", stderr, tt.stderr}} {
				if s.want == "" && s.got != "" || !strings.Contains(s.got, s.want) {
					t.Errorf("got %s %q, want it to hold %q (empty: nothing)", s.name, s.got, s.want)
				}
			}
		})
	}
}
