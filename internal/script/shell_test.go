package script

import (
	"os"
	"testing"

	"go.starlark.net/starlark"
)

// TestShellInteractNeedsTerminal: without a terminal (CI), shell_interact
// and console_interact fail at once, saying what to do, before it boots anything (the run has
// no lab: a boot would panic).
func TestShellInteractNeedsTerminal(t *testing.T) {
	for _, tc := range []struct{ method, want string }{
		{"shell_interact", "server: shell_interact needs a terminal; run vmlab with a terminal or use vmlab shell from another one"},
		{"console_interact", "server: console_interact needs a terminal; run vmlab with a terminal, or use vmlab console from another one on a lab that is up"},
	} {
		t.Run(tc.method, func(t *testing.T) { needsTerminal(t, tc.method, tc.want) })
	}
}

func needsTerminal(t *testing.T, method, want string) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	old := interactiveTerminal
	interactiveTerminal = func() (*os.File, *os.File, *os.File) { return r, w, w }
	defer func() { interactiveTerminal = old }()

	f, err := Load("testdata/call.star", []byte("server = machine()\ndef test():\n  server."+method+"()\n"))
	if err != nil {
		t.Fatal(err)
	}
	run := &run{ctx: t.Context(), file: f, test: "test", rep: &events{}}
	thread := &starlark.Thread{Name: "test"}
	thread.SetLocal(runKey, run)
	_, err = starlark.Call(thread, f.globals["test"], nil, nil)
	if msg, _ := splitError(err); msg != want {
		t.Errorf("got %q, want %q", msg, want)
	}
}
