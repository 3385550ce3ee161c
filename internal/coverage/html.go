package coverage

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

//go:embed html.tmpl
var htmlSource string

// htmlTemplates is parsed on first use: the guest's agent runs this
// binary's package inits too (see internal/report).
var htmlTemplates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("coverage").Parse(htmlSource))
})

// htmlLinks are the other outputs the index links, relative to it; ""
// when not written.
type htmlLinks struct{ LCOV, Cobertura, Summary, Go, C string }

type (
	htmlIndex struct {
		Machines []MachineSummary
		Total    Stat
		Notes    []string
		Links    htmlLinks
		Files    []htmlRow
		Funcs    []htmlRow
		Runs     []htmlRun // per test, per machine
	}
	htmlRun struct {
		Test, Machine string
		Cell          htmlCell
		Partial       []string
	}
	// htmlRow is a file or a function: its coverage on all machines and
	// on each.
	htmlRow struct {
		Name, Href, Where string
		All               htmlCell
		Per               []htmlCell
	}
	htmlCell struct{ Text, Class string }

	htmlFile struct {
		Name, Source string
		Machines     []MachineSummary
		NoSource     bool
		Lines        []htmlLine
	}
	htmlLine struct {
		N      int
		Text   string
		Class  string   // "", "miss", "all", "only", "some"
		Counts []string // per machine; "" when it had no data for the line
		RanOn  string
	}
)

// writeHTML writes the index and a page per file.
func writeHTML(dir string, m *Model, sum *Summary, links htmlLinks) error {
	pages := filepath.Join(dir, filesDir)
	if err := os.MkdirAll(pages, 0o755); err != nil {
		return err
	}
	// A merge before this one may have written more pages.
	stale, _ := filepath.Glob(filepath.Join(pages, "f*.html"))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	idx := htmlIndex{Machines: sum.Machines, Total: sum.Total, Notes: sum.Notes, Links: links}
	for _, r := range m.Runs {
		run := htmlRun{Test: r.Test, Machine: r.Machine, Cell: cell(m.RunStat(r))}
		if r.Partial {
			run.Partial = r.partialReasons()
		}
		idx.Runs = append(idx.Runs, run)
	}
	for i, f := range m.Files {
		href := fmt.Sprintf("%s/f%d.html", filesDir, i)
		idx.Files = append(idx.Files, htmlRow{Name: f.Name, Href: href, All: cell(f.Stat("")), Per: perMachine(m, f.Lines)})
		for _, fn := range f.Funcs {
			lines := f.FuncLines(fn)
			idx.Funcs = append(idx.Funcs, htmlRow{
				Name: fn.Name, Where: fmt.Sprintf("%s:%d", f.Name, fn.Start), Href: fmt.Sprintf("%s#L%d", href, fn.Start),
				All: cell(statLines(lines, "")), Per: perMachine(m, lines),
			})
		}
		if err := render(filepath.Join(dir, href), "file", filePage(m, f, sum.Machines)); err != nil {
			return err
		}
	}
	return render(filepath.Join(dir, IndexFile), "index", idx)
}

func render(path, name string, data any) error {
	var buf bytes.Buffer
	if err := htmlTemplates().ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func cell(s Stat) htmlCell {
	if s.Lines == 0 {
		return htmlCell{Text: "–", Class: "none"}
	}
	c := htmlCell{Text: fmt.Sprintf("%.1f%% (%d/%d)", s.Percent(), s.Covered, s.Lines), Class: "lo"}
	switch {
	case s.Covered == s.Lines:
		c.Class = "hi"
	case s.Covered > 0:
		c.Class = "mid"
	}
	return c
}

func perMachine(m *Model, lines []*Line) []htmlCell {
	cells := make([]htmlCell, len(m.Machines))
	for i, name := range m.Machines {
		cells[i] = cell(statLines(lines, name))
	}
	return cells
}

// filePage is a source file with each line's counts per machine and which
// machines ran it.
func filePage(m *Model, f *File, machines []MachineSummary) htmlFile {
	p := htmlFile{Name: f.Name, Source: f.Source, Machines: machines}
	var text []string
	if data, err := os.ReadFile(f.Source); f.Source != "" && err == nil {
		text = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	} else {
		p.NoSource = true
	}
	byNumber := map[int]*Line{}
	for _, l := range f.Lines {
		byNumber[l.Number] = l
	}
	last := len(text)
	if p.NoSource && len(f.Lines) > 0 {
		last = f.Lines[len(f.Lines)-1].Number
	}
	for n := 1; n <= last; n++ {
		hl := htmlLine{N: n}
		if n <= len(text) {
			hl.Text = text[n-1]
		}
		l := byNumber[n]
		if l == nil {
			if p.NoSource {
				continue
			}
			p.Lines = append(p.Lines, hl)
			continue
		}
		hl.Class, hl.RanOn = lineClass(m, l)
		for _, name := range m.Machines {
			c, ok := l.Count(name)
			s := ""
			if ok {
				s = strconv.FormatInt(c, 10)
			}
			hl.Counts = append(hl.Counts, s)
		}
		p.Lines = append(p.Lines, hl)
	}
	return p
}

// lineClass says how a line ran: on no machine ("miss"), on every
// machine of the run ("all"), on one of several ("only"), or on some
// ("some"), and names them. A machine's blank count on the page tells a
// machine that ran none of the file's code from one that skipped the line.
func lineClass(m *Model, l *Line) (class, ranOn string) {
	on := m.RanOn(l)
	switch {
	case len(on) == 0:
		return "miss", "none"
	case len(m.Machines) == 1:
		return "all", ""
	case len(on) == len(m.Machines) && len(on) == 2:
		return "all", "both"
	case len(on) == len(m.Machines):
		return "all", "all"
	case len(on) == 1:
		return "only", "only " + on[0]
	default:
		return "some", strings.Join(on, ", ")
	}
}
