package cli

import (
	"os"
	"strings"
	"testing"
)

// TestLabCommandsWithoutLab: the lab commands' usage and what they say
// with no lab up. None of these boots anything.
func TestLabCommandsWithoutLab(t *testing.T) {
	dir, err := os.MkdirTemp("", "vcli")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Setenv("XDG_RUNTIME_DIR", dir)
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // each must hold this; "" must be empty
	}{
		{[]string{"help", "up"}, exitOK, "usage: vmlab up [flags] FILE.star", ""},
		{[]string{"help", "shell"}, exitOK, "usage: vmlab shell [flags] MACHINE [-- CMD ARGS...]", ""},
		{[]string{"up"}, exitUsage, "", "usage: vmlab up"},
		{[]string{"up", "-lab", ".hidden", "testdata/up.star"}, exitUsage, "", `-lab: lab name ".hidden"`},
		{[]string{"up", "testdata/bad.star"}, exitUsage, "", "testdata/bad.star:"},
		{[]string{"shell"}, exitUsage, "", "usage: vmlab shell"},
		{[]string{"console", "a", "b"}, exitUsage, "", "usage: vmlab console"},
		{[]string{"shell", "server", "--", "true"}, exitFail, "", "no lab is up: start one with vmlab up FILE"},
		{[]string{"console", "server"}, exitFail, "", "no lab is up: start one with vmlab up FILE"},
		{[]string{"down", "-lab", "web"}, exitFail, "", `lab "web" is not up, and no other is: start it with vmlab up -lab web FILE`},
		{[]string{"status"}, exitOK, "no lab is up", ""},
		{[]string{"status", "-json"}, exitOK, "[]", ""},
	}
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
