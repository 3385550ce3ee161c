package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TerminalOptions says how the terminal report looks.
type TerminalOptions struct {
	// Color paints PASS green and FAIL red. Without it the output holds
	// no escape sequence at all: the guests' own are stripped too.
	Color bool
	// Verbose shows every command, boot and capture, and the machines'
	// console lines as they arrive. Without it the report shows tests,
	// subtests, logs, failed commands and failures.
	Verbose bool
	// Progress keeps a block of lines at the bottom, one per machine of
	// the running tests: its state (booting, up, failed, down, stopped),
	// how long it has been in it and the step under way on it, redrawn as
	// the time passes. The log scrolls above it. Only for a terminal: it is
	// made of cursor movements and erase sequences.
	Progress bool
	// Width is the terminal's width in columns, to keep the progress
	// block's lines from wrapping; 0 means 80.
	Width int
	// Size, when set, is asked for the terminal's columns and rows at each
	// redraw instead of Width, so a resized window is followed; rows bound
	// the block's height (0: unknown).
	Size func() (cols, rows int)
}

// IsTerminal reports whether f is a character device, as a terminal is;
// use it to choose TerminalOptions.Color. (/dev/null is one too, where
// colour does no harm.)
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// NewTerminal returns a sink that writes a report for people to w: a
// header line per test, its subtests nested under it with PASS or FAIL
// and their durations, its logs, and for each failure the error, where in
// the script it happened, the failing command's output and the last
// console lines of the failing machine. Close writes the summary line
// "N passed, N failed"; it does not close w.
//
// Tests that run at once do not interleave: the first one running is
// shown live and the others are held, each shown whole when the tests
// before it have ended.
func NewTerminal(w io.Writer, opts TerminalOptions) Sink {
	s := &terminal{
		display: newDisplay(&errWriter{w: w}, opts.newProgress()),
		opts:    opts,
		running: make(map[string]*termTest),
	}
	return s
}

// newProgress is the progress block the options ask for, or nil.
func (o TerminalOptions) newProgress() *progress {
	if !o.Progress {
		return nil
	}
	return &progress{size: o.size, now: time.Now}
}

// size is the terminal's columns (never 0) and rows (0: unknown).
func (o TerminalOptions) size() (cols, rows int) {
	cols = o.Width
	if o.Size != nil {
		cols, rows = o.Size()
	}
	if cols <= 0 {
		cols = 80
	}
	return cols, rows
}

type terminal struct {
	display // its mu guards everything below too

	opts    TerminalOptions
	running map[string]*termTest
	queue   []*termTest // tests not yet written whole, in start order; queue[0] is live
	passed  int
	cached  int // of passed: not run, as they passed before
	failed  int
	skipped int
}

// termTest is what the terminal keeps of one test while it runs.
type termTest struct {
	name     string
	held     bytes.Buffer // output while another test is live
	ended    bool
	open     []termStep // open subtests, outermost first
	lastCmd  *Event
	console  consoleLog // the consoles' newest lines, as the report files keep them
	machines []string   // in order of their first console line

	// step is the step under way, watched for running long (without a
	// progress block); nil when none is.
	step *longStep

	// detailed says a failure's details were shown, and error which;
	// the test and outer subtests fail with the same error after.
	detailed bool
	error    string
}

// termStep is an open subtest; shown says its header line is out.
type termStep struct {
	name  string
	shown bool
}

func (s *terminal) Event(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.event(e)
	s.redraw()
}

func (s *terminal) event(e Event) {
	switch e.Kind {
	case Attach: // whichever test, or none (a REPL's line)
		s.attach(e)
		return
	case Detach:
		s.resume()
		return
	}
	t := s.test(e)
	if t == nil {
		return
	}
	switch e.Kind {
	case SubtestStart:
		s.subtestStart(t, e)
	case SubtestEnd:
		s.subtestEnd(t, e)
	case CommandStart:
		s.stepStart(t, e)
	case Command:
		s.stepEnd(t)
		s.command(t, e)
	case Console:
		s.console(t, e)
	case Log:
		s.showOpen(t)
		s.text(t, len(t.open)+1, prefix(e.Machine), e.Text)
	case Network:
		s.showOpen(t)
		s.line(t, len(t.open)+1, networkLine(e))
	case ServiceExit:
		s.showOpen(t)
		s.serviceExit(t, e)
	case BootStart:
		if s.progress != nil {
			s.progress.set(e.Test, e.Machine, stateBooting, e.Time, "")
		}
		s.boot(t, e.Machine+": booting")
	case Boot:
		if s.progress != nil {
			s.progress.booted(e.Test, e.Machine, e.Time, e.Error)
		}
		s.boot(t, e.Machine+": "+bootText(e))
	case Stop: // the plain log has the failures that follow, and "went down"
		if s.progress != nil {
			s.progress.stopped(e.Test, e.Machine, e.Time, e.Error)
		}
	case Capture:
		s.verbose(t, "capture: "+e.File)
	case ConsoleLog:
		s.verbose(t, e.Machine+": console log in "+e.File)
	case TestEnd:
		s.testEnd(t, e)
	}
}

// test returns the running test e belongs to, starting one (and writing
// its header) on TestStart. Other events of a test that is not running
// are dropped (nil), but for a TestEnd, which still counts.
func (s *terminal) test(e Event) *termTest {
	t := s.running[e.Test]
	if t != nil && e.Kind != TestStart {
		return t
	}
	if e.Kind != TestStart && e.Kind != TestEnd {
		return nil
	}
	t = &termTest{name: e.Test, console: consoleLog{limit: consoleLimit}}
	s.running[e.Test] = t
	s.queue = append(s.queue, t)
	if !e.Skipped && !e.Cached {
		s.line(t, 0, "RUN  "+clean(e.Test))
	}
	return t
}

func (s *terminal) subtestStart(t *termTest, e Event) {
	depth := len(e.Path)
	if depth == 0 {
		return
	}
	t.open = append(t.open[:min(len(t.open), depth-1)], termStep{name: clean(e.Path[depth-1])})
	if s.opts.Verbose {
		s.showOpen(t)
	}
}

func (s *terminal) subtestEnd(t *termTest, e Event) {
	depth := len(e.Path)
	if depth == 0 {
		return
	}
	t.open = t.open[:min(len(t.open), depth-1)]
	s.showOpen(t)
	s.line(t, depth, s.result(e.Passed, clean(e.Path[depth-1]), seconds(e.Duration)))
	if !e.Passed {
		s.failure(t, depth+1, e)
	}
}

func (s *terminal) testEnd(t *termTest, e Event) {
	t.open = nil
	if e.Skipped {
		s.line(t, 0, fmt.Sprintf("SKIP %s (%s)", clean(e.Test), clean(e.Text)))
		s.skipped++
		s.end(t)
		return
	}
	if e.Cached { // go test's "(cached)": it passed before, with the same inputs
		s.line(t, 0, s.result(e.Passed, clean(e.Test), "cached, "+seconds(e.Duration)))
	} else {
		s.line(t, 0, s.result(e.Passed, clean(e.Test), seconds(e.Duration)))
	}
	if e.Passed {
		s.passed++
		if e.Cached {
			s.cached++
		}
	} else {
		s.failure(t, 1, e)
		s.failed++
	}
	s.end(t)
}

// end marks t ended and lets the next test have the terminal.
func (s *terminal) end(t *termTest) {
	if s.progress != nil {
		s.progress.forget(t.name)
	}
	s.stepEnd(t)
	t.ended = true
	if s.running[t.name] == t {
		delete(s.running, t.name)
	}
	s.advance()
}

// advance hands the terminal on once the live test has ended: the held
// output of the next test is written, and if that one has ended too, of
// the one after, until a test that still runs is live.
func (s *terminal) advance() {
	for len(s.queue) > 0 && s.queue[0].ended {
		s.queue = s.queue[1:]
		if len(s.queue) > 0 {
			next := s.queue[0]
			s.write(next.held.String())
			next.held = bytes.Buffer{}
		}
	}
}

func (s *terminal) command(t *termTest, e Event) {
	t.lastCmd = &e
	if !s.opts.Verbose && !failed(&e) {
		return
	}
	s.showOpen(t)
	depth := len(t.open) + 1
	s.line(t, depth, commandLine(e))
	if e.File != "" {
		s.line(t, depth+1, fileVerb(e.File)+" "+clean(e.File))
	}
	if !failed(&e) { // a failure shows the output with its details
		s.output(t, depth+1, "stdout", e.Stdout, e.StdoutFile, "")
		s.output(t, depth+1, "stderr", e.Stderr, e.StderrFile, "")
	}
}

// commandLine sums up a command: "vm$ systemctl start x (exit 1, 0.21s)",
// "vm$ wait_for_unit(\"web\") (timed out after 10s, 10.00s)".
func commandLine(e Event) string {
	how := outcome(&e)
	if msg := commandError(&e); msg != "" && how == "error" {
		how = "error: " + msg
	}
	return fmt.Sprintf("%s$ %s (%s, %s)", clean(e.Machine), firstLine(e.Command), how, seconds(e.Duration))
}

// networkLine sums up a change of the network, shown always: it explains
// the timings and failures after it. "network: link_fault(a, b, delay =
// 0.25)", with ": error: ..." when it failed.
func networkLine(e Event) string {
	line := "network: " + firstLine(e.Text)
	if e.Error != "" {
		line += " (error: " + firstLine(e.Error) + ")"
	}
	return line
}

func (s *terminal) console(t *termTest, e Event) {
	if !slices.Contains(t.machines, e.Machine) {
		t.machines = append(t.machines, e.Machine)
	}
	t.console.add(e.Machine, e.Text, e.Reason)
	if s.opts.Verbose && !e.Quiet {
		s.showOpen(t)
		s.text(t, len(t.open)+1, prefix(e.Machine), agentproto.ElideBootParam(e.Text))
	}
}

// failure shows what failed a test or subtest: the error, where, the
// failing command's output and the console of the machine it ran on (of
// every machine when no command failed). The test and the subtests around
// a failed one fail with the same error; their details are not repeated.
func (s *terminal) failure(t *termTest, depth int, e Event) {
	if t.detailed && e.Error == t.error {
		return
	}
	t.detailed, t.error = true, e.Error
	machines := t.machines
	cmd := failingCommand(t.lastCmd, e.Path)
	if cmd != nil {
		machines = []string{cmd.Machine}
	} else if m := errorMachine(e.Error, t.machines); m != "" {
		machines = []string{m}
	}
	msg := e.Error
	if t.hasConsole(machines) {
		msg = withoutConsole(msg) // the tail below shows those lines
	}
	s.field(t, depth, "error", msg)
	s.field(t, depth, "line", e.Source)
	s.field(t, depth, "at", backtrace(e.Where, e.Error))
	if cmd != nil {
		s.output(t, depth, "stdout", cmd.Stdout, cmd.StdoutFile, e.Error)
		s.output(t, depth, "stderr", cmd.Stderr, cmd.StderrFile, e.Error)
	}
	for _, m := range machines {
		last := t.console.tail(m, consoleTail)
		if len(last) == 0 {
			continue
		}
		s.line(t, depth, fmt.Sprintf("last %s of %s:", plural(len(last), "console line"), clean(m)))
		for _, l := range last {
			s.line(t, depth+1, prefix(m)+l)
		}
	}
}

// hasConsole reports whether any of machines printed a console line.
func (t *termTest) hasConsole(machines []string) bool {
	for _, m := range machines {
		if len(t.console.tail(m, 1)) > 0 {
			return true
		}
	}
	return false
}

// output shows a failing command's stdout or stderr, unless the error
// message carries it already, starting a line (machine.ExitError does).
// More than termOutputLines lines show as their first and last halves,
// naming the file that holds them all.
func (s *terminal) output(t *termTest, depth int, label, out, file, errMsg string) {
	if trimmed := strings.TrimSpace(out); trimmed == "" || strings.Contains(errMsg, "\n"+trimmed) {
		return
	}
	s.line(t, depth, label+":")
	ls := lines(out)
	if len(ls) <= termOutputLines {
		s.text(t, depth+1, "", out)
		return
	}
	where := ""
	if file != "" {
		where = "; the whole " + label + " is in " + clean(file)
	}
	for _, l := range ls[:termOutputLines/2] {
		s.line(t, depth+1, l)
	}
	s.line(t, depth+1, fmt.Sprintf("[... %d lines left out%s ...]", len(ls)-termOutputLines, where))
	for _, l := range ls[len(ls)-termOutputLines/2:] {
		s.line(t, depth+1, l)
	}
}

// termOutputLines is how many lines of a failing command's stdout or
// stderr the terminal shows: a screenful or two, not the 12,000 lines of
// the 128 KiB the other reports keep of a long output.
const termOutputLines = 100

// field shows "label: text", or the label on a line of its own with the
// text's lines under it when there are several.
func (s *terminal) field(t *termTest, depth int, label, text string) {
	ls := lines(text)
	switch len(ls) {
	case 0:
		return
	case 1:
		s.line(t, depth, label+": "+ls[0])
		return
	}
	s.line(t, depth, label+":")
	for _, l := range ls {
		s.line(t, depth+1, l)
	}
}

// boot shows a line about a boot: on a terminal with a progress block
// only in verbose mode (the block tells), else always, so that a plain log
// shows where the time went.
func (s *terminal) boot(t *termTest, text string) {
	if s.opts.Verbose || s.progress == nil {
		s.showOpen(t)
		s.text(t, len(t.open)+1, "", text)
	}
}

// verbose shows a line at the current depth in verbose mode only.
func (s *terminal) verbose(t *termTest, text string) {
	if s.opts.Verbose {
		s.showOpen(t)
		s.text(t, len(t.open)+1, "", text)
	}
}

// showOpen writes the header of each open subtest not yet shown, so that
// what follows sits under its subtest. Subtests with nothing to show
// inside get a single result line instead.
func (s *terminal) showOpen(t *termTest) {
	for i := range t.open {
		if !t.open[i].shown {
			s.line(t, i+1, "RUN  "+t.open[i].name)
			t.open[i].shown = true
		}
	}
}

// result is "PASS name (1.23s)", the word coloured when asked.
func (s *terminal) result(passed bool, name, dur string) string {
	word, color := "PASS", "\x1b[32m"
	if !passed {
		word, color = "FAIL", "\x1b[31m"
	}
	if s.opts.Color {
		word = color + word + "\x1b[0m"
	}
	return fmt.Sprintf("%s %s (%s)", word, name, dur)
}

// text writes each line of text, cleaned, each with prefix.
// TerminalLines are text's lines as the terminal report writes them,
// for those who write to the terminal beside it (the REPL): without
// escape sequences and control characters (what a guest printed cannot
// drive the terminal) and without the final newline.
func TerminalLines(text string) []string { return lines(text) }

func (s *terminal) text(t *termTest, depth int, prefix, text string) {
	for _, l := range lines(text) {
		s.line(t, depth, prefix+l)
	}
}

// line writes one line, indented two spaces a level, to the terminal if t
// is live or else to t's held output. text must be clean.
func (s *terminal) line(t *termTest, depth int, text string) {
	text = strings.Repeat("  ", depth) + text + "\n"
	if len(s.queue) > 0 && s.queue[0] == t {
		s.write(text)
		return
	}
	t.held.WriteString(text)
}

// attach hands the terminal to a guest until the Detach: nothing is
// written meanwhile (see display.suspend), and in a plain log the step
// that attached is not said to be "still running": a person is using it.
func (s *terminal) attach(e Event) {
	s.suspend()
	if t := s.running[e.Test]; t != nil && t.step != nil {
		t.step.stop()
		t.step = nil
	}
}

// serviceTail is how many of an exited service's last lines the terminal
// shows (agentproto.TellingLines: not blank, not a bare "(EE)"); report.html
// and events.jsonl keep all the agent sent.
const serviceTail = 5

// serviceExit writes how a declared service exited and its last lines.
func (s *terminal) serviceExit(t *termTest, e Event) {
	depth := len(t.open) + 1
	s.line(t, depth, prefix(e.Machine)+clean(e.Text))
	for _, l := range agentproto.TellingLines(lines(e.Stdout), serviceTail) {
		s.line(t, depth+1, l)
	}
}

func prefix(machine string) string {
	if machine == "" {
		return ""
	}
	return clean(machine) + ": "
}

// Close writes what tests still hold, marking those that never ended as
// failed, then the summary line. It returns the first write error.
func (s *terminal) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for s.suspended > 0 { // a Detach that never came: the summary is due
			s.resume()
		}
		s.flush()
		if s.progress != nil {
			s.stopClock()
		}
	}
	err := s.w.result()
	s.mu.Unlock()
	s.ticks.Wait() // a tick under way sees closed and writes nothing
	return err
}

// flush writes what tests still hold and the summary line.
func (s *terminal) flush() {
	for len(s.queue) > 0 {
		t := s.queue[0]
		if !t.ended {
			t.open = nil
			s.line(t, 0, s.result(false, clean(t.name), "did not finish"))
			s.failed++
		}
		s.end(t)
	}
	// Alone on its line and never coloured: CI greps for it.
	summary := fmt.Sprintf("%d passed%s, %d failed", s.passed, CachedNote(s.cached), s.failed)
	if s.skipped > 0 {
		summary += fmt.Sprintf(", %d skipped", s.skipped)
	}
	s.write(summary + "\n")
}

// CachedNote is what a summary says after "N passed" of the n among them
// that were cached: " (n cached)", or nothing when none was.
func CachedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d cached)", n)
}

// errWriter remembers the first write error and writes nothing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) WriteString(s string) {
	if s != "" {
		e.Write([]byte(s))
	}
}

func (e *errWriter) result() error {
	if e.err != nil {
		return fmt.Errorf("write terminal report: %w", e.err)
	}
	return nil
}
