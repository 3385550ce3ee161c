package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serviceRun is a test in which a machine's service x exits at once (Xorg
// with a bad option) and a wait then times out.
func serviceRun() []Event {
	tail := "X.Org X Server 1.21.1.7\n(EE) Unrecognized option: -bad\n(EE) \n\n"
	return []Event{
		{Time: at(0), Kind: TestStart, Test: "test_x"},
		{Time: at(2.5), Kind: Boot, Test: "test_x", Machine: "gui", Duration: 2500 * time.Millisecond},
		{Time: at(2.6), Kind: ServiceExit, Test: "test_x", Machine: "gui", Text: "service x exited with status 1", Stdout: tail},
		{Time: at(22.6), Kind: TestEnd, Test: "test_x", Error: "gui: wait for the X server on :0: timed out after 20s", Duration: 22600 * time.Millisecond},
	}
}

// TestServiceExitShown: a service's exit is on the terminal, in
// events.jsonl and on report.html's timeline, with its last lines.
func TestServiceExitShown(t *testing.T) {
	var term bytes.Buffer
	if err := emitAll(NewTerminal(&term, TerminalOptions{}), serviceRun()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  gui: service x exited with status 1\n    X.Org X Server 1.21.1.7\n    (EE) Unrecognized option: -bad\nFAIL",
	} {
		if !strings.Contains(term.String(), want) {
			t.Errorf("terminal lacks %q; got:\n%s", want, term.String())
		}
	}

	var jl bytes.Buffer
	if err := emitAll(NewJSONLines(&jl), serviceRun()); err != nil {
		t.Fatal(err)
	}
	if want := `"kind":"service-exit","test":"test_x","machine":"gui","stdout":"X.Org X Server 1.21.1.7\n(EE) Unrecognized option: -bad`; !strings.Contains(jl.String(), want) {
		t.Errorf("events.jsonl lacks %q; got:\n%s", want, jl.String())
	}

	path := filepath.Join(t.TempDir(), "report.html")
	if err := emitAll(NewHTML(path), serviceRun()); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`gui: <span class="fail">service x exited with status 1</span>`,
		"<summary>its last output</summary><pre>X.Org X Server 1.21.1.7\n(EE) Unrecognized option: -bad\n",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}
