package cli

import (
	"os"
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
	checkCommands(t, []commandCase{
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
	})
}
