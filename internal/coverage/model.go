package coverage

import (
	"cmp"
	"slices"
)

// Run is one machine in one test: the unit whose data the merge reads
// (DIR/raw/TEST/MACHINE) and keeps apart in the model, so that a line's
// counts say which machine ran it, in which test.
type Run struct {
	Test, Machine string
	// Partial and Reasons come from the run's state.json, plus what the
	// merge sees itself (a Go program that wrote meta-data but no
	// counters was killed before it exited).
	Partial bool
	Reasons []string
	// HasGo and HasGcov say which data the run left; a run with neither
	// had binaries that were not instrumented.
	HasGo, HasGcov bool
	// Excluded says why the run's data is not merged (State.Excluded).
	Excluded string
	// Services are the services the machine ran (State.Services).
	Services []string

	dir string // DIR/raw/TEST/MACHINE
}

// partialReasons are why the run's data is partial, never empty.
func (r *Run) partialReasons() []string {
	if len(r.Reasons) == 0 {
		return []string{"marked partial"}
	}
	return r.Reasons
}

// HasData reports whether the run left any coverage data.
func (r *Run) HasData() bool { return r.HasGo || r.HasGcov }

// Model is the merged coverage of a run: every instrumented source file,
// line by line, with each Run's count. A Run that has no entry for a line
// ran no binary holding it; a zero entry means it ran such a binary and
// not that line.
type Model struct {
	Runs     []*Run   // sorted by test, then machine
	Machines []string // the machine names of Runs, sorted, once each
	Files    []*File  // sorted by Name
}

// File is one source file.
type File struct {
	// Name is how the file is shown and keyed: for Go, the import path
	// followed by the file name, as the toolchain records it
	// (example.com/demo/lib/lib.go); for C and C++, the absolute path of
	// the source as gcov resolves it.
	Name string
	// Source is the file's path on the host, or "" when it was not
	// found: the report then has counts but no text, and no functions
	// for Go.
	Source string
	Lang   string  // "go" or "c" (C and C++ alike)
	Lines  []*Line // instrumented lines, sorted by Number
	Funcs  []*Func // sorted by Start
}

// Line is one instrumented line.
type Line struct {
	Number int
	Hits   map[*Run]int64 // how often each run executed it
}

// Func is one function and the lines it spans.
type Func struct {
	Name       string
	Start, End int // lines, inclusive
	// Hits is how often each run entered the function: gcov's
	// execution count for C, the count of the function's first
	// instrumented line for Go.
	Hits map[*Run]int64
}

// Stat is a line count: how many instrumented lines, how many ran.
type Stat struct{ Lines, Covered int }

// Percent is Covered as a percentage of Lines (0 when there are none).
func (s Stat) Percent() float64 {
	if s.Lines == 0 {
		return 0
	}
	return 100 * float64(s.Covered) / float64(s.Lines)
}

func (s *Stat) add(o Stat) { s.Lines += o.Lines; s.Covered += o.Covered }

// Count is how often machine (every machine when it is "") executed the
// line, summed over tests; ok is false when no run of that machine had
// data for the line.
func (l *Line) Count(machine string) (n int64, ok bool) {
	for r, h := range l.Hits {
		if machine == "" || r.Machine == machine {
			n += h
			ok = true
		}
	}
	return n, ok
}

// Count is how often machine ("" for all) entered the function.
func (f *Func) Count(machine string) (n int64, ok bool) {
	for r, h := range f.Hits {
		if machine == "" || r.Machine == machine {
			n += h
			ok = true
		}
	}
	return n, ok
}

// Stat counts the file's lines for machine ("" for all machines): the
// lines a run of that machine had data for, and those it executed.
func (f *File) Stat(machine string) Stat { return statLines(f.Lines, machine) }

// FuncLines are the file's lines within fn.
func (f *File) FuncLines(fn *Func) []*Line {
	i, _ := slices.BinarySearchFunc(f.Lines, fn.Start, func(l *Line, n int) int { return cmp.Compare(l.Number, n) })
	j := i
	for j < len(f.Lines) && f.Lines[j].Number <= fn.End {
		j++
	}
	return f.Lines[i:j]
}

func statLines(lines []*Line, machine string) Stat {
	var s Stat
	for _, l := range lines {
		if n, ok := l.Count(machine); ok {
			s.Lines++
			if n > 0 {
				s.Covered++
			}
		}
	}
	return s
}

// Stat counts every file's lines for machine ("" for all machines).
func (m *Model) Stat(machine string) Stat {
	var s Stat
	for _, f := range m.Files {
		s.add(f.Stat(machine))
	}
	return s
}

// RunStat counts every file's lines for one run: one machine in one test.
func (m *Model) RunStat(r *Run) Stat {
	var s Stat
	for _, f := range m.Files {
		for _, l := range f.Lines {
			if n, ok := l.Hits[r]; ok {
				s.Lines++
				if n > 0 {
					s.Covered++
				}
			}
		}
	}
	return s
}

// RanOn lists the machines that executed the line, in Machines' order.
func (m *Model) RanOn(l *Line) []string {
	var on []string
	for _, name := range m.Machines {
		if n, _ := l.Count(name); n > 0 {
			on = append(on, name)
		}
	}
	return on
}

// builder gathers the model from the readers, keyed by file name and line.
type builder struct {
	runs  []*Run
	files map[string]*fileBuilder
	// newer maps each C source modified after its build to the notes
	// file (.gcno) it is newer than.
	newer map[string]string
}

type fileBuilder struct {
	File
	lines map[int]*Line
	funcs map[funcKey]*Func
}

type funcKey struct {
	name  string
	start int
}

func newBuilder(runs []*Run) *builder {
	return &builder{runs: runs, files: map[string]*fileBuilder{}, newer: map[string]string{}}
}

func (b *builder) file(name, lang string) *fileBuilder {
	f := b.files[name]
	if f == nil {
		f = &fileBuilder{File: File{Name: name, Lang: lang}, lines: map[int]*Line{}, funcs: map[funcKey]*Func{}}
		b.files[name] = f
	}
	return f
}

// line records that r executed line n of f count times. Counts of the
// same run add up (two objects holding the same header's inline code);
// keep takes the larger one instead (Go blocks that share a line).
func (f *fileBuilder) line(r *Run, n int, count int64, keep bool) {
	l := f.lines[n]
	if l == nil {
		l = &Line{Number: n, Hits: map[*Run]int64{}}
		f.lines[n] = l
	}
	if keep {
		l.Hits[r] = max(l.Hits[r], count)
	} else {
		l.Hits[r] += count
	}
}

func (f *fileBuilder) fn(name string, start, end int) *Func {
	k := funcKey{name, start}
	fn := f.funcs[k]
	if fn == nil {
		fn = &Func{Name: name, Start: start, End: end, Hits: map[*Run]int64{}}
		f.funcs[k] = fn
	}
	return fn
}

// model returns the sorted model.
func (b *builder) model() *Model {
	m := &Model{Runs: b.runs}
	for _, r := range b.runs {
		if !slices.Contains(m.Machines, r.Machine) {
			m.Machines = append(m.Machines, r.Machine)
		}
	}
	slices.Sort(m.Machines)
	for _, fb := range b.files {
		f := fb.File
		for _, l := range fb.lines {
			f.Lines = append(f.Lines, l)
		}
		slices.SortFunc(f.Lines, func(a, b *Line) int { return cmp.Compare(a.Number, b.Number) })
		for _, fn := range fb.funcs {
			f.Funcs = append(f.Funcs, fn)
		}
		slices.SortFunc(f.Funcs, func(a, b *Func) int {
			return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Name, b.Name))
		})
		m.Files = append(m.Files, &f)
	}
	slices.SortFunc(m.Files, func(a, b *File) int { return cmp.Compare(a.Name, b.Name) })
	return m
}
