package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestConsoleElidesBootParam: a console line that quotes the kernel
// command line shows the boot parameter as "vmlab=…" on the terminal
// (with -v and in a failure's tail) and in report.html's tail; the
// event itself (events.jsonl) keeps the line as the guest wrote it.
func TestConsoleElidesBootParam(t *testing.T) {
	param := agentproto.BootConfig{Hostname: "gui"}.Param()
	line := "service x: Kernel command line: console=ttyS0 " + param
	short := "service x: Kernel command line: console=ttyS0 vmlab=…"
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "test_x"},
		{Time: at(1), Kind: Console, Test: "test_x", Machine: "gui", Text: line},
		{Time: at(2), Kind: TestEnd, Test: "test_x", Error: "gui: wait for the X server on :0: timed out after 20s"},
	}
	var term bytes.Buffer
	if err := emitAll(NewTerminal(&term, TerminalOptions{Verbose: true}), evs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(term.String(), "gui: "+short+"\n"); n != 2 {
		t.Errorf("terminal shows the short line %d times, want 2 (-v and the tail); got:\n%s", n, term.String())
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := emitAll(NewHTML(path), evs); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), short) || strings.Contains(string(page), param) {
		t.Errorf("report.html does not show the parameter short")
	}
	var jl bytes.Buffer
	if err := emitAll(NewJSONLines(&jl), evs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(jl.String(), param) {
		t.Errorf("events.jsonl lost the line as written")
	}
}
