package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	// liner is the line editor: among the maintained Go ones it is the
	// smallest that has what a REPL wants (history with a file, Ctrl-C
	// that aborts the line, a cooked terminal between prompts so SIGINT
	// reaches us during a call) and it costs one small dependency
	// (go-runewidth). reeflective/readline brings a dozen modules for vi
	// modes and completion menus; chzyer/readline is no longer maintained;
	// x/term's Terminal keeps the terminal raw all along (no SIGINT during
	// a call) and has no history file.
	"github.com/peterh/liner"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// runRepl is `vmlab repl FILE`: a Starlark REPL with the file's machines
// and functions bound. Exit codes: 0; 1 when stdin is not a terminal and a
// chunk failed (so scripts can tell); 2 on bad usage or a bad file; 3
// when vmlab could not boot; 128+N after signal N.
func runRepl(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "repl", "FILE.star")
	var bf bootFlags
	bf.register(fs)
	verbose := fs.Bool("v", false, "show every command and the consoles as they go")
	out := fs.String("out", "", "write the console logs and captures to `dir` (default: a new directory in $TMPDIR, removed at the end)")
	labName := fs.String("lab", "", "serve the machines as the lab `name`, for vmlab shell -lab in other terminals (default: the file's base name)")
	oneFile := func() bool {
		if fs.NArg() != 1 {
			e.errorf("repl takes one file.star, got %d (vmlab run takes several)", fs.NArg())
			return false
		}
		return true
	}
	if ok, code := parseMixed(e, fs, args, oneFile); !ok {
		return code
	}
	files, err := loadAll(ctx, fs.Args(), defaultLoadTimeout)
	if ctx.Err() != nil {
		e.errorf("%v", context.Cause(ctx))
		return interruptedCode(ctx)
	}
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	name := cmp.Or(*labName, control.DefaultName(files[0].Name))
	if err := control.CheckName(name); err != nil {
		e.errorf("-lab: %v", err)
		return exitUsage
	}
	serveLabs(files[0], "repl", func(string) string { return name }, e.errorf, e.errorf)
	dir, removeDir, err := outputDir(*out)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	if removeDir {
		defer machine.RemoveTempDir(dir)
	}
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitInternal
	}
	events := newReplEvents(e.stdout, *verbose)
	defer events.Close()
	sctx, endSession := context.WithCancelCause(ctx)
	defer endSession(nil)
	s, err := files[0].Open(sctx, boot, dir, events)
	if err != nil {
		e.errorf("%v", err)
		return exitInternal
	}
	// The session is the lab: here it opens, and Close below stops its
	// machines.
	fmt.Fprintf(e.stderr, "vmlab: %s: machines %s boot on first use; help() says what is bound, Ctrl-D leaves; from another terminal: vmlab shell -lab %s MACHINE\n",
		files[0].Name, strings.Join(machineNames(files[0]), ", "), name)
	failed := newREPL(e, s, events).run(ctx)
	events.left()
	endSession(errLeft) // a boot start() began stops, not to be waited for
	if err := s.Close(); err != nil {
		e.errorf("stop the machines of %s: %v", files[0].Name, err)
	}
	if !removeDir {
		fmt.Fprintf(e.stderr, "vmlab: console logs and captures in %s\n", dir)
	}
	switch {
	case ctx.Err() != nil:
		return interruptedCode(ctx)
	case failed:
		return exitFail
	}
	return exitOK
}

func machineNames(f *script.File) []string {
	names := make([]string, len(f.Specs))
	for i, s := range f.Specs {
		names[i] = s.Name
	}
	return names
}

// repl reads chunks, evaluates them on a session and prints what they
// return or how they failed.
type repl struct {
	e       *env
	s       *script.Session
	shown   *replEvents // where the session's events are shown; nil when elsewhere
	in      lineReader
	failed  atomic.Bool // a chunk failed (the exit status when stdin is not a terminal)
	exited  atomic.Bool // a chunk called exit() (or quit()), rather than the input ending
	editing bool        // stdin is a terminal: prompts, history, Ctrl-C
	lines   int         // the lines read so far

	mu     sync.Mutex
	cancel context.CancelCauseFunc // the running call's; nil between calls
}

func newREPL(e *env, s *script.Session, shown *replEvents) *repl {
	return &repl{e: e, s: s, shown: shown}
}

// run reads and evaluates chunks until the input ends (Ctrl-D) or ctx
// does, and says whether a chunk read from a plain input (not a terminal)
// failed: a script piped in fails as a whole.
func (r *repl) run(ctx context.Context) (failed bool) {
	in, editing := openInput(r.e, r.s)
	r.in, r.editing = in, editing
	if editing {
		// SIGINT (Ctrl-C while the terminal is cooked, during a call or
		// just after one) cancels the running call, if any, never the
		// REPL; at the prompt Ctrl-C is a key (liner's ErrPromptAborted).
		// Without a terminal it stops everything, as it stops a script.
		release := r.e.intr.set(r.interrupt)
		defer release()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// SIGTERM (or SIGINT outside a call): the loop may be blocked
		// reading a line, which nothing unblocks; the calls end with ctx.
	}
	in.Close()
	return r.failed.Load() && !editing
}

func (r *repl) loop(ctx context.Context) {
	for ctx.Err() == nil {
		first := r.lines + 1
		chunk, err := r.readChunk()
		switch {
		case errors.Is(err, io.EOF):
			if r.editing {
				fmt.Fprintln(r.e.stdout)
			}
			return
		case errors.Is(err, liner.ErrPromptAborted):
			continue // Ctrl-C at the prompt clears the line
		case err != nil:
			r.e.errorf("read the REPL's input: %v", err)
			return
		}
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		if !r.editing {
			// A script piped in: its errors name its lines, not the
			// chunk's (at a prompt each chunk starts at line 1).
			chunk = strings.Repeat("\n", first-1) + chunk
		}
		if !r.eval(ctx, chunk) {
			return // exit()
		}
	}
}

// errLeft ends what the REPL leaves under way when it ends: the boots
// start() began.
var errLeft = errors.New("the REPL ended")

// errCtrlC is the cause of a call Ctrl-C cancelled.
var errCtrlC = errors.New("interrupted by Ctrl-C")

// eval runs one chunk under its own context, which interrupt cancels,
// and prints its value or its failure. It says whether the REPL goes on:
// not after exit().
func (r *repl) eval(ctx context.Context, chunk string) bool {
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	v, err := r.s.Eval(callCtx, chunk)
	r.mu.Lock()
	r.cancel = nil
	r.mu.Unlock()
	switch {
	case errors.Is(err, script.ErrExit):
		r.exited.Store(true)
		return false
	case err != nil:
		r.failed.Store(true)
		printFailure(r.e.stdout, r.s, err)
	case v != nil && v.Type() != "NoneType":
		fmt.Fprintln(r.e.stdout, v.String())
	}
	return true
}

// interrupt cancels the running call, if any.
func (r *repl) interrupt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(errCtrlC)
	}
}

// printFailure shows a chunk's failure as vmlab run shows a test's: the
// message, the file's line, then the backtrace. A call Ctrl-C cancelled
// goes without the machine's last console lines: they explain a timeout
// or a crash, not what the user did.
func printFailure(w io.Writer, s *script.Session, err error) {
	msg, line, where := s.Failure(err)
	if errors.Is(err, errCtrlC) {
		msg = withoutConsole(msg)
	}
	// A command's output is in it: cleaned, as the terminal report
	// cleans it.
	msg = strings.Join(report.TerminalLines(msg), "\n")
	fmt.Fprintf(w, "error: %s\n", msg)
	if line != "" {
		fmt.Fprintf(w, "  line: %s\n", line)
	}
	if where != "" {
		fmt.Fprintf(w, "  at:\n%s\n", indent(where, "    "))
	}
	var down *machine.DownError
	if errors.As(err, &down) {
		if name := s.MachineGlobal(down.Machine); name != "" {
			fmt.Fprintf(w, "  %s is down: %s.start() boots it again\n", down.Machine, name)
		}
	}
}

// consoleSection heads the console lines a machine's error ends with
// (machine.StoppedError, TimeoutError, DownError).
const consoleSection = "\n--- last console lines ---\n"

// withoutConsole is a machine error's text without its console lines.
func withoutConsole(msg string) string {
	head, _, _ := strings.Cut(msg, consoleSection)
	return head
}

func indent(text, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n"+prefix)
}

// Prompts: Python's, as the NixOS driver's REPL shows them.
const (
	promptFirst = ">>> "
	promptMore  = "... "
)

// readChunk reads lines until they make a whole chunk (script.Complete).
func (r *repl) readChunk() (string, error) {
	var chunk strings.Builder
	prompt := promptFirst
	for {
		line, err := r.readLine(prompt)
		if err != nil {
			if errors.Is(err, io.EOF) && chunk.Len() > 0 {
				return chunk.String(), nil // the input ended inside a chunk: run what there is
			}
			return "", err
		}
		r.lines++
		chunk.WriteString(line + "\n")
		if strings.TrimSpace(line) != "" {
			r.in.AppendHistory(line) // a line at a time, as Python's REPL keeps it
		}
		if script.Complete(chunk.String()) && !r.blockGoesOn(line) {
			return chunk.String(), nil
		}
		prompt = promptMore
	}
}

// blockGoesOn says whether a script piped in goes on with an indented
// line after the blank (or comment) line it just gave: a blank line in a
// function's body, as a file has them, which does not end the chunk (at
// a prompt, it does, as in Python's REPL). After another blank line, the
// one after that decides.
func (r *repl) blockGoesOn(line string) bool {
	p, ok := r.in.(*plainInput)
	if !ok || !blankOrComment(line) {
		return false
	}
	next, err := p.peek()
	return err == nil && (blankOrComment(next) || next[0] == ' ' || next[0] == '\t')
}

func blankOrComment(line string) bool {
	line = strings.TrimSpace(line)
	return line == "" || strings.HasPrefix(line, "#")
}

// readLine reads a line after prompt; on a terminal, the events that
// come meanwhile are written above the prompt.
func (r *repl) readLine(prompt string) (string, error) {
	if r.editing && r.shown != nil {
		r.shown.setPrompt(prompt)
		defer r.shown.setPrompt("")
	}
	return r.in.ReadLine(prompt)
}

// lineReader is where the REPL's lines come from: a line editor on a
// terminal, or plain lines.
type lineReader interface {
	// ReadLine returns a line without its newline; io.EOF at the end
	// (Ctrl-D), liner.ErrPromptAborted on Ctrl-C.
	ReadLine(prompt string) (string, error)
	AppendHistory(line string)
	Close() error
}

// openInput returns the line editor when stdin is the process's terminal,
// else plain lines from stdin, without prompts.
func openInput(e *env, s *script.Session) (lineReader, bool) {
	if f, ok := e.stdin.(*os.File); ok && f == os.Stdin && pty.IsTerminal(f) {
		return newEditor(e, s), true
	}
	return &plainInput{r: bufio.NewReader(e.stdin)}, false
}

type plainInput struct {
	r    *bufio.Reader
	next *string // a line peek read
}

func (p *plainInput) ReadLine(string) (string, error) {
	if p.next != nil {
		line := *p.next
		p.next = nil
		return line, nil
	}
	line, err := p.r.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// peek returns the next line, which ReadLine returns next.
func (p *plainInput) peek() (string, error) {
	if p.next == nil {
		line, err := p.ReadLine("")
		if err != nil {
			return "", err
		}
		p.next = &line
	}
	return *p.next, nil
}

func (p *plainInput) AppendHistory(string) {}
func (p *plainInput) Close() error         { return nil }

// editor is liner with the history file and Tab completing the
// session's names.
type editor struct {
	e       *env
	l       *liner.State
	history string   // "" when there is no place for it
	added   []string // the lines typed here, for the history file
}

func newEditor(e *env, s *script.Session) *editor {
	ed := &editor{e: e, l: liner.NewLiner(), history: historyFile()}
	ed.l.SetCtrlCAborts(true)
	ed.l.SetWordCompleter(func(line string, pos int) (string, []string, string) {
		runes := []rune(line) // pos counts runes
		head, word := splitWord(string(runes[:pos]))
		return head, s.Completions(word), string(runes[pos:])
	})
	ed.l.SetMultiLineMode(true)
	if ed.history != "" {
		// Not through a symlink, which could point anywhere (the file
		// is written back, 0600, when the REPL ends).
		f, err := os.OpenFile(ed.history, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		switch {
		case err == nil:
			ed.l.ReadHistory(f)
			f.Close()
		case errors.Is(err, syscall.ELOOP):
			e.errorf("the REPL's history %s is a symlink: no history is read or written; remove it, or set XDG_STATE_HOME to another directory", ed.history)
			ed.history = ""
		}
	}
	return ed
}

// splitWord splits the text before the cursor into what stays and the
// name being typed, dots included: "x = a.su" is "x = ", "a.su".
func splitWord(before string) (head, word string) {
	i := len(before)
	for i > 0 {
		c := before[i-1]
		if c != '.' && c != '_' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			break
		}
		i--
	}
	return before[:i], before[i:]
}

func (ed *editor) ReadLine(prompt string) (string, error) { return ed.l.Prompt(prompt) }

func (ed *editor) AppendHistory(line string) {
	ed.l.AppendHistory(line)
	if n := len(ed.added); n == 0 || ed.added[n-1] != line {
		ed.added = append(ed.added, line)
	}
}

// Close writes the history (0600: it holds what was typed) and gives the
// terminal back as it was.
func (ed *editor) Close() error {
	if ed.history != "" {
		if err := ed.saveHistory(); err != nil {
			ed.e.errorf("save the REPL's history in %s: %v", ed.history, err)
		}
	}
	return ed.l.Close()
}

// saveHistory adds the lines typed here to the history file as it is
// now (another REPL may have written it since this one read it), keeping
// the last liner.HistoryLimit.
func (ed *editor) saveHistory() error {
	if len(ed.added) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(ed.history), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(ed.history, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil { // one made before with another mode
		return err
	}
	// Under a lock: two REPLs that end at once write one after the other.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	old, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	var lines []string
	if text := strings.TrimSuffix(string(old), "\n"); text != "" {
		lines = strings.Split(text, "\n")
	}
	lines = append(lines, ed.added...)
	lines = lines[max(0, len(lines)-liner.HistoryLimit):]
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strings.Join(lines, "\n")+"\n"), 0); err != nil {
		return err
	}
	return f.Close()
}

// historyFile is the REPL's history, per user: $XDG_STATE_HOME/vmlab/
// repl_history, or ~/.local/state/vmlab/repl_history; "" when there is
// no home.
func historyFile() string {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "vmlab", "repl_history")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "state", "vmlab", "repl_history")
}

// interrupts routes SIGINT to the REPL's running call rather than to the
// run's context: Ctrl-C cancels the call, the REPL and its machines stay.
// Under vmlab run -i, the first Ctrl-C during a test goes to the test
// (setOnce), the next one to the run. The zero value, and nil, have no
// taker.
type interrupts struct {
	mu    sync.Mutex
	taker func()
	once  bool   // the taker takes one SIGINT, then the run has them again
	gen   uint64 // counts the takers set, so an old release leaves a new taker
}

// set makes fn take SIGINT until the returned release is called.
func (in *interrupts) set(fn func()) (release func()) { return in.setTaker(fn, false) }

// setOnce makes fn take the next SIGINT only, and not after release.
func (in *interrupts) setOnce(fn func()) (release func()) { return in.setTaker(fn, true) }

func (in *interrupts) setTaker(fn func(), once bool) (release func()) {
	if in == nil {
		return func() {}
	}
	in.mu.Lock()
	in.gen++
	gen := in.gen
	in.taker, in.once = fn, once
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		if in.gen == gen {
			in.taker = nil
		}
		in.mu.Unlock()
	}
}

// take hands SIGINT to the taker, if there is one, and says whether there
// was.
func (in *interrupts) take() bool {
	if in == nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.taker == nil {
		return false
	}
	fn := in.taker
	if in.once {
		in.taker = nil
	}
	fn()
	return true
}

// replEvents shows a session's events: the tests run from the REPL as
// vmlab run's terminal report shows them, and between tests what the
// chunks do that has no value to print: print() and log() lines, boots,
// and with -v the commands and consoles.
type replEvents struct {
	w       io.Writer
	verbose bool
	term    *report.Reporter

	// noSummary drops the summary line at Close: vmlab run -i's REPL,
	// whose run writes the summary of the tests as they ran.
	noSummary bool

	mu     sync.Mutex
	tests  int // tests running (a test a test runs counts)
	ran    bool
	prompt string // the line editor's prompt while it waits at it, else ""
	gone   bool   // the REPL ended: its machines are being stopped
	// attached counts the terminals handed to a machine (shell_interact's
	// Attach events not yet followed by their Detach); held are the lines
	// that came meanwhile, shown at the Detach, not over the shell.
	attached    int
	held        []string
	heldBytes   int // of held, bounded by replHeldLimit
	heldDropped int // lines left out past it
}

// replHeldLimit bounds the lines held while a shell has the terminal: a
// chatty guest's console (-v) during a long shell would grow them without
// end. Past it, lines are counted, not kept.
const replHeldLimit = 1 << 20

func newReplEvents(w io.Writer, verbose bool) *replEvents {
	return &replEvents{w: w, verbose: verbose, term: report.New(report.NewTerminal(w, replTerminal(w, verbose)))}
}

// replTerminal is how the REPL's terminal report looks on w: as vmlab
// run's (colour on a terminal, not with NO_COLOR) but without the live
// block, whose redraws would fight the prompt.
func replTerminal(w io.Writer, verbose bool) report.TerminalOptions {
	opts := report.TerminalFor(w, verbose)
	opts.Progress, opts.Size = false, nil
	return opts
}

func (p *replEvents) Emit(e report.Event) {
	p.term.Emit(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case report.TestStart:
		p.tests++
		p.ran = true
		return
	case report.TestEnd:
		p.tests--
		return
	case report.Attach:
		p.attached++
		return
	case report.Detach:
		p.detach()
		return
	}
	if p.tests > 0 || p.gone {
		return // the terminal report shows it, or no one is looking
	}
	ls := p.lines(e)
	line := strings.Join(ls, "\n")
	switch {
	case len(ls) == 0:
	case p.attached > 0:
		if p.heldBytes+len(line) > replHeldLimit {
			p.heldDropped++
			break
		}
		p.held = append(p.held, line)
		p.heldBytes += len(line)
	case p.prompt != "":
		// An event while the prompt waits (a machine went down, a
		// console line with -v): on a line of its own above the
		// prompt, which comes back (what was typed reappears with the
		// next key).
		fmt.Fprintf(p.w, "\r\x1b[K%s\n%s", line, p.prompt)
	default:
		fmt.Fprintln(p.w, line)
	}
}

// detach notes a terminal given back, and shows the lines held while
// the last one was away. p.mu is held.
func (p *replEvents) detach() {
	if p.attached == 0 {
		return
	}
	p.attached--
	if p.attached == 0 && len(p.held) > 0 {
		fmt.Fprintln(p.w, strings.Join(p.held, "\n"))
		if p.heldDropped > 0 {
			fmt.Fprintf(p.w, "... %d more lines came while the shell had the terminal (the console logs have them)\n", p.heldDropped)
		}
		p.held, p.heldBytes, p.heldDropped = nil, 0, 0
	}
}

// left says the REPL has ended: the lines of the machines as they stop
// (a boot cut short, with -v their consoles) are not shown.
func (p *replEvents) left() {
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
}

// setPrompt says the line editor waits at prompt ("": it does not).
func (p *replEvents) setPrompt(prompt string) {
	p.mu.Lock()
	p.prompt = prompt
	p.mu.Unlock()
}

// lines are how the REPL shows an event of a chunk (none hides it),
// cleaned as the terminal report cleans its lines: what a guest printed
// cannot drive the terminal.
func (p *replEvents) lines(e report.Event) []string {
	who := ""
	if e.Machine != "" {
		who = e.Machine + ": "
	}
	one := func(text string) []string { return []string{who + text} }
	switch e.Kind {
	case report.Log:
		ls := report.TerminalLines(e.Text)
		if len(ls) == 0 {
			return one("") // print("")
		}
		for i, l := range ls {
			ls[i] = who + l
		}
		return ls
	case report.Network:
		return report.TerminalLines(e.Text)
	case report.BootStart:
		return one("booting")
	case report.Boot:
		// One line: the call that waited for the boot fails with the
		// details.
		first, _ := headLine(e.Error)
		switch {
		case strings.Contains(first, errCtrlC.Error()):
			return one("boot stopped by Ctrl-C")
		case e.Error != "":
			return one("boot failed: " + first)
		}
		return one(fmt.Sprintf("up in %.1fs", e.Duration.Seconds()))
	case report.Console:
		if p.verbose && !e.Quiet {
			line, _ := headLine(agentproto.ElideBootParam(e.Text))
			return one(line)
		}
	case report.ServiceExit:
		// Between tests too: a service that dies while a person types
		// is why their next wait will time out.
		line, _ := headLine(e.Text)
		return one(line)
	case report.Command:
		if p.verbose {
			cmd, more := headLine(e.Command)
			if more {
				cmd += " ..."
			}
			return one(fmt.Sprintf("$ %s (%s, %s)", cmd, outcome(e), e.Duration.Round(time.Millisecond)))
		}
	}
	return nil
}

// headLine is text's first line, cleaned, and whether more follow.
func headLine(text string) (string, bool) {
	ls := report.TerminalLines(text)
	if len(ls) == 0 {
		return "", false
	}
	return ls[0], len(ls) > 1
}

// outcome is how a Command event's call ended, in a word or two.
func outcome(e report.Event) string {
	switch e.Outcome {
	case report.Exited, "":
		return fmt.Sprintf("exit %d", e.Exit)
	case report.Done:
		return "done"
	}
	return string(e.Outcome)
}

// Close writes the summary of the tests run from the REPL, if any (and
// not noSummary).
func (p *replEvents) Close() error {
	p.mu.Lock()
	ran := p.ran
	p.mu.Unlock()
	if !ran || p.noSummary {
		return nil // a test run from the REPL has ended: it has nothing held
	}
	return p.term.Close()
}
