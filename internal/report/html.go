package report

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HTMLFile is a report at path that needs nothing else to open (inline
// CSS, no script, nothing fetched). Per test it shows the outcome, a
// timeline of subtests, commands (output folded), boots and logs, the
// failure, each machine's console (folded) with a link to its log, and
// links to the captures; in a merged report, the shard and host each test
// ran on.
func HTMLFile(path string) File {
	return HTMLFileWithCoverage(path, func() string { return "" })
}

// HTMLFileWithCoverage is HTMLFile with a link, under the run's outcome,
// to the run's merged coverage report: coverageIndex returns the
// index.html that coverage.Merge wrote when this run's merge succeeded,
// "" otherwise (an earlier run's page may still be there). It is called
// as the report is written, so merge before closing the report's sink.
func HTMLFileWithCoverage(path string, coverageIndex func() string) File {
	return File{path: path, what: "html", render: func(tests []*testRecord, path string) ([]byte, error) {
		return renderHTML(tests, path, coverageIndex())
	}}
}

// NewHTML returns a sink that writes only an HTML report (NewFiles).
func NewHTML(path string) Sink { return NewFiles(HTMLFile(path)) }

//go:embed html.tmpl
var htmlSource string

// htmlTemplate is parsed on first use, not at package init: every vmlab
// process runs this package's init, the guest's agent too, where parsing
// took 12 ms of a boot under TCG (GODEBUG=inittrace=1 on the kernel
// command line).
var htmlTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Parse(htmlSource))
})

// renderHTML renders the page; links are relative to path's directory.
func renderHTML(tests []*testRecord, path, coverageIndex string) ([]byte, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	page := newHTMLPage(tests, dir)
	if coverageIndex != "" {
		link := htmlRelLink(coverageIndex, dir)
		page.Coverage = &link
	}
	var buf bytes.Buffer
	if err := htmlTemplate().Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// The page as the template sees it: text cleaned, durations formatted.
// html/template escapes all of it.
type (
	htmlPage struct {
		Started                 string
		Passed, Failed, Skipped int
		Tests                   []htmlTest
		Coverage                *htmlLink // the merged coverage report
	}
	htmlTest struct {
		htmlStep
		ID       string // the test's anchor
		Consoles []htmlConsole
		Dropped  int // bytes of console output dropped
		Captures []htmlLink
		// Shard and Host: where the test ran, in a merged report.
		Shard, Host string
	}
	htmlStep struct {
		Name     string
		Passed   bool
		Skipped  bool   // never started
		Reason   string // why it was skipped (its test-end's text)
		Cached   string // not run, as it passed before: when and where
		Duration string
		Failure  *htmlFailure
		Items    []htmlItem
	}
	htmlFailure struct {
		Error, Where string
		Source       string // the failing script line, "file:line: text"
		Command      *htmlCommand
		// Console is the failing command's machine's last console lines.
		Console *htmlConsole
	}
	// htmlItem is one timeline entry; one of its pointers is set.
	htmlItem struct {
		At      string // since the test started
		Command *htmlCommand
		Log     *htmlLog
		Boot    *htmlLog
		Network *htmlNetwork
		Service *htmlService
		Sub     *htmlStep
	}
	htmlCommand struct {
		Machine, Command, Duration string
		Outcome                    string // "exit 1", "timed out after 10s", ...
		Error, Stdout, Stderr      string
		StdoutFile, StderrFile     *htmlLink // whole outputs, when they were long
		File                       *htmlLink // what copy_from_vm copied, or a screenshot
		// Image is the screenshot File holds, inline (a data: URL), so
		// the report shows it without the file beside it.
		Image template.URL
		// FileVerb is what the command did with File: "copied to",
		// "saved" (a screenshot).
		FileVerb string
		Failed   bool
	}
	htmlLog struct{ Machine, Text string }
	// htmlService is a declared service's exit: how, and its last lines.
	htmlService struct{ Machine, Text, Output string }
	// htmlNetwork is a change of the network: the call, and its error.
	htmlNetwork struct{ Text, Error string }
	// htmlConsole is one machine's console lines and its log file.
	htmlConsole struct {
		Machine string
		Lines   int
		Text    string
		File    *htmlLink
	}
	htmlLink struct{ Href, Name string }
)

func newHTMLPage(tests []*testRecord, dir string) htmlPage {
	var p htmlPage
	for i, t := range tests {
		if i == 0 && !t.Start.IsZero() {
			p.Started = t.Start.Format("2006-01-02 15:04:05 MST")
		}
		switch {
		case t.Skipped:
			p.Skipped++
		case t.Passed:
			p.Passed++
		default:
			p.Failed++
		}
		p.Tests = append(p.Tests, htmlTest{
			htmlStep: newHTMLStep(&t.step, t.Start, t, dir),
			ID:       fmt.Sprintf("test-%d", i+1),
			Consoles: htmlConsoles(t, dir),
			Dropped:  t.console.dropped,
			Captures: htmlCaptures(t.captures, dir),
			Shard:    clean(t.Shard),
			Host:     clean(t.Host),
		})
	}
	return p
}

// newHTMLStep renders a test (t's own step) or one of its subtests. The
// test's failure, at the top, shows the error, where, the failing command
// with its output and its machine's last console lines. A subtest that
// failed with the same error (it made the test fail) only says FAIL in the
// timeline, its failing command marked there.
func newHTMLStep(s *step, testStart time.Time, t *testRecord, dir string) htmlStep {
	hs := htmlStep{Name: clean(s.Name), Passed: s.Passed, Skipped: s.Skipped, Cached: clean(s.Cached), Duration: seconds(s.Duration)}
	if s.Skipped {
		hs.Reason = cleanText(cmp.Or(s.Error, "skipped"))
	}
	isTest := len(s.Path) == 0
	if !s.Passed && !s.Skipped && (isTest || s.Error != t.Error) {
		hs.Failure = newHTMLFailure(s, isTest, t, dir)
	}
	for _, en := range s.Items {
		hs.Items = append(hs.Items, newHTMLItem(en, testStart, t, dir))
	}
	return hs
}

// newHTMLFailure is a step's failure: the error, where, and for the test
// the failing command and the last console lines of its machine (or of the
// machine the error names), which the error then does not repeat.
func newHTMLFailure(s *step, isTest bool, t *testRecord, dir string) *htmlFailure {
	f := &htmlFailure{Error: cleanText(s.Error), Where: cleanText(backtrace(s.Where, s.Error)), Source: clean(s.Source)}
	if !isTest {
		return f
	}
	m := errorMachine(s.Error, t.machines)
	if cmd := s.FailedCmd; cmd != nil {
		f.Command = newHTMLCommand(cmd, dir)
		f.Error = failureError(s)
		m = cmd.Machine
	}
	if tail := t.console.tail(m, consoleTail); m != "" && len(tail) > 0 {
		f.Console = &htmlConsole{Machine: clean(m), Lines: len(tail), Text: strings.Join(tail, "\n") + "\n"}
		f.Error = cleanText(withoutConsole(f.Error))
	}
	return f
}

func newHTMLItem(en entry, testStart time.Time, t *testRecord, dir string) htmlItem {
	if en.Sub != nil {
		sub := newHTMLStep(en.Sub, testStart, t, dir)
		return htmlItem{At: offset(en.Sub.Start, testStart), Sub: &sub}
	}
	e := en.Event
	it := htmlItem{At: offset(e.Time, testStart)}
	switch e.Kind {
	case Command:
		it.Command = newHTMLCommand(e, dir)
	case Log:
		it.Log = &htmlLog{Machine: clean(e.Machine), Text: cleanText(e.Text)}
	case Network:
		it.Network = &htmlNetwork{Text: cleanText(e.Text), Error: firstLine(e.Error)}
	case ServiceExit:
		it.Service = &htmlService{Machine: clean(e.Machine), Text: cleanText(e.Text), Output: cleanText(e.Stdout)}
	case Boot:
		text := bootText(*e)
		if e.Error != "" {
			text += ": " + firstLine(e.Error)
		}
		it.Boot = &htmlLog{Machine: clean(e.Machine), Text: text}
	}
	return it
}

// newHTMLCommand renders a command, with links to the files that hold its
// long outputs whole (the report keeps their head and tail).
func newHTMLCommand(e *Event, dir string) *htmlCommand {
	c := &htmlCommand{
		Machine:  clean(e.Machine),
		Command:  cleanText(e.Command),
		Duration: seconds(e.Duration),
		Outcome:  outcome(e),
		Error:    commandError(e),
		Stdout:   cleanText(e.Stdout),
		Stderr:   cleanText(e.Stderr),
		Failed:   failed(e),
	}
	if e.File != "" {
		link := htmlFileLink(e.File, dir)
		c.File = &link
		c.Image = inlineImage(e.File, dir)
		c.FileVerb = fileVerb(e.File)
	}
	if e.StdoutFile != "" {
		link := htmlFileLink(e.StdoutFile, dir)
		c.StdoutFile = &link
	}
	if e.StderrFile != "" {
		link := htmlFileLink(e.StderrFile, dir)
		c.StderrFile = &link
	}
	return c
}

// offset is "+1.23s", how long after the test's start t came.
func offset(t, testStart time.Time) string {
	if t.IsZero() || testStart.IsZero() {
		return ""
	}
	return "+" + seconds(t.Sub(testStart))
}

// htmlConsoles is each machine's console: the lines kept and a link to
// its log file, even for machines that printed nothing. Machines come in
// the order of their console logs (declaration order), then any others in
// the order they first showed.
func htmlConsoles(t *testRecord, dir string) []htmlConsole {
	machines := slices.Clone(t.logOrder)
	for _, m := range t.machines {
		if !slices.Contains(machines, m) {
			machines = append(machines, m)
		}
	}
	out := make([]htmlConsole, len(machines))
	index := make(map[string]int)
	text := make([]strings.Builder, len(machines))
	for i, m := range machines {
		out[i].Machine = clean(m)
		index[clean(m)] = i
		if f, ok := t.consoleFiles[m]; ok {
			link := htmlFileLink(f, dir)
			out[i].File = &link
		}
	}
	for _, line := range t.console.kept() {
		i, ok := index[line.Machine]
		if !ok {
			continue
		}
		text[i].WriteString(line.Text + "\n")
		out[i].Lines++
	}
	for i := range out {
		out[i].Text = text[i].String()
	}
	return out
}

// htmlCaptures links capture files.
func htmlCaptures(files []string, dir string) []htmlLink {
	var links []htmlLink
	for _, f := range files {
		links = append(links, htmlFileLink(f, dir))
	}
	return links
}

// htmlFileLink links a file: relative to the report's directory when it is
// under it, so that the directory can move as a whole, and by absolute
// path otherwise.
// maxInlineImage bounds a screenshot put inline: a 1024x768 console's PNG
// is ~5 KB, a busy desktop's ~200 KB.
const maxInlineImage = 4 << 20

// inlineImage returns the PNG at path as a data: URL; "" when path is no
// PNG (by its name), is not a regular file under dir (the report's own
// directory: a merged shard's events could name any host file, or a
// symbolic link to one), cannot be read, or is over maxInlineImage.
func inlineImage(path, dir string) template.URL {
	if !strings.EqualFold(filepath.Ext(path), ".png") {
		return ""
	}
	b, ok := readInside(dir, path, maxInlineImage)
	if !ok {
		return ""
	}
	// The bytes are base64 in a data: URL of a fixed type: nothing in
	// them can leave the attribute.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
}

// readInside reads the regular file at path, if it is under dir, is no
// symbolic link, does not reach outside dir through one, and holds at most
// limit bytes.
func readInside(dir, path string, limit int64) ([]byte, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, false
	}
	root, err := os.OpenRoot(dir) // no component may lead out of dir
	if err != nil {
		return nil, false
	}
	defer root.Close()
	if fi, err := root.Lstat(rel); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(b)) > limit {
		return nil, false
	}
	return b, true
}

// htmlRelLink links a file relative to the report's directory wherever it
// is, "../cov/index.html" too: the coverage directory is often beside the
// output directory, and an absolute host path breaks once both are
// archived or moved together.
func htmlRelLink(f, dir string) htmlLink {
	abs, err := filepath.Abs(f)
	if err != nil {
		abs = f
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return htmlLink{Href: filepath.ToSlash(abs), Name: abs}
	}
	rel = filepath.ToSlash(rel)
	if !strings.HasPrefix(rel, "../") {
		// "./" keeps a first segment with a colon from reading as a URL
		// scheme.
		return htmlLink{Href: "./" + rel, Name: rel}
	}
	return htmlLink{Href: rel, Name: rel}
}

func htmlFileLink(f, dir string) htmlLink {
	abs, err := filepath.Abs(f)
	if err != nil {
		abs = f
	}
	rel, err := filepath.Rel(dir, abs)
	if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		// "./" keeps a first segment with a colon from reading as a URL
		// scheme.
		return htmlLink{Href: "./" + filepath.ToSlash(rel), Name: filepath.ToSlash(rel)}
	}
	return htmlLink{Href: filepath.ToSlash(abs), Name: abs}
}
