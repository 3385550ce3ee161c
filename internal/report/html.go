package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NewHTML returns a sink that writes a report to path on Close: one HTML
// file that needs nothing else to open (inline CSS, no script, nothing
// fetched). Per test it shows the outcome, a timeline of subtests,
// commands (output folded), boots and logs, the failure, each machine's
// console (folded) and links to the captures. Tests that never ended
// count as failed. The directory must exist.
func NewHTML(path string) Sink {
	return &htmlSink{path: path}
}

type htmlSink struct {
	path   string
	c      collector
	closed bool
	err    error
}

//go:embed html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

func (h *htmlSink) Event(e Event) { h.c.add(e) }

func (h *htmlSink) Close() error {
	if h.closed {
		return h.err
	}
	h.closed = true
	h.c.finishAll()
	if err := h.write(); err != nil {
		h.err = fmt.Errorf("write html report: %w", err)
	}
	return h.err
}

func (h *htmlSink) write() error {
	dir, err := filepath.Abs(filepath.Dir(h.path))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, newHTMLPage(h.c.tests, dir)); err != nil {
		return err
	}
	return os.WriteFile(h.path, buf.Bytes(), 0o644)
}

// The page as the template sees it: text cleaned, durations formatted.
// html/template escapes all of it.
type (
	htmlPage struct {
		Started        string
		Passed, Failed int
		Tests          []htmlTest
	}
	htmlTest struct {
		htmlStep
		ID       string // the test's anchor
		Consoles []htmlConsole
		Dropped  int // bytes of console output dropped
		Captures []htmlLink
	}
	htmlStep struct {
		Name     string
		Passed   bool
		Duration string
		Failure  *htmlFailure
		Items    []htmlItem
	}
	htmlFailure struct {
		Error, Where string
		Command      *htmlCommand
	}
	// htmlItem is one timeline entry; one of its pointers is set.
	htmlItem struct {
		At      string // since the test started
		Command *htmlCommand
		Log     *htmlLog
		Boot    *htmlLog
		Sub     *htmlStep
	}
	htmlCommand struct {
		Machine, Command, Duration string
		Exit                       int
		Error, Stdout, Stderr      string
		Failed                     bool
	}
	htmlLog struct{ Machine, Text string }
	// htmlConsole is one machine's console lines.
	htmlConsole struct {
		Machine string
		Lines   int
		Text    string
	}
	htmlLink struct{ Href, Name string }
)

func newHTMLPage(tests []*testRecord, dir string) htmlPage {
	var p htmlPage
	for i, t := range tests {
		if i == 0 && !t.Start.IsZero() {
			p.Started = t.Start.Format("2006-01-02 15:04:05 MST")
		}
		if t.Passed {
			p.Passed++
		} else {
			p.Failed++
		}
		p.Tests = append(p.Tests, htmlTest{
			htmlStep: newHTMLStep(&t.step, t.Start),
			ID:       fmt.Sprintf("test-%d", i+1),
			Consoles: htmlConsoles(&t.console),
			Dropped:  t.console.dropped,
			Captures: htmlCaptures(t.captures, dir),
		})
	}
	return p
}

func newHTMLStep(s *step, testStart time.Time) htmlStep {
	hs := htmlStep{Name: clean(s.Name), Passed: s.Passed, Duration: seconds(s.Duration)}
	if !s.Passed {
		hs.Failure = &htmlFailure{Error: cleanText(s.Error), Where: cleanText(backtrace(s.Where, s.Error))}
		// A subtest's failing command is just above in the timeline; the
		// test's failure, at the top, shows it again.
		if s.FailedCmd != nil && len(s.Path) == 0 {
			hs.Failure.Command = newHTMLCommand(s.FailedCmd)
		}
	}
	for _, en := range s.Items {
		hs.Items = append(hs.Items, newHTMLItem(en, testStart))
	}
	return hs
}

func newHTMLItem(en entry, testStart time.Time) htmlItem {
	if en.Sub != nil {
		sub := newHTMLStep(en.Sub, testStart)
		return htmlItem{At: offset(en.Sub.Start, testStart), Sub: &sub}
	}
	e := en.Event
	it := htmlItem{At: offset(e.Time, testStart)}
	switch e.Kind {
	case Command:
		it.Command = newHTMLCommand(e)
	case Log:
		it.Log = &htmlLog{Machine: clean(e.Machine), Text: cleanText(e.Text)}
	case Boot:
		text := "booted in " + seconds(e.Duration)
		if e.Text != "" {
			text += " (guest uptime at " + e.Text + ")"
		}
		if e.Error != "" {
			text = "did not boot after " + seconds(e.Duration) + ": " + firstLine(e.Error)
		}
		it.Boot = &htmlLog{Machine: clean(e.Machine), Text: text}
	}
	return it
}

func newHTMLCommand(e *Event) *htmlCommand {
	return &htmlCommand{
		Machine:  clean(e.Machine),
		Command:  cleanText(e.Command),
		Duration: seconds(e.Duration),
		Exit:     e.Exit,
		Error:    cleanText(e.Error),
		Stdout:   cleanText(e.Stdout),
		Stderr:   cleanText(e.Stderr),
		Failed:   failed(e),
	}
}

// offset is "+1.23s", how long after the test's start t came.
func offset(t, testStart time.Time) string {
	if t.IsZero() || testStart.IsZero() {
		return ""
	}
	return "+" + seconds(t.Sub(testStart))
}

// htmlConsoles splits a test's console lines by machine, machines in the
// order they first printed.
func htmlConsoles(l *consoleLog) []htmlConsole {
	var out []htmlConsole
	text := make(map[string]*strings.Builder)
	index := make(map[string]int)
	for _, line := range l.kept() {
		b := text[line.Machine]
		if b == nil {
			b = new(strings.Builder)
			text[line.Machine] = b
			index[line.Machine] = len(out)
			out = append(out, htmlConsole{Machine: line.Machine})
		}
		b.WriteString(line.Text + "\n")
		out[index[line.Machine]].Lines++
	}
	for i := range out {
		out[i].Text = text[out[i].Machine].String()
	}
	return out
}

// htmlCaptures links capture files: relative to the report's directory
// when they are under it, so that the directory can move as a whole, and
// by absolute path otherwise.
func htmlCaptures(files []string, dir string) []htmlLink {
	var links []htmlLink
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			abs = f
		}
		rel, err := filepath.Rel(dir, abs)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			// "./" keeps a first segment with a colon from reading as a
			// URL scheme.
			links = append(links, htmlLink{Href: "./" + filepath.ToSlash(rel), Name: filepath.ToSlash(rel)})
			continue
		}
		links = append(links, htmlLink{Href: filepath.ToSlash(abs), Name: abs})
	}
	return links
}
