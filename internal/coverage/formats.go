package coverage

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// path is where tools should find the file: its source on the host, or
// its name when the source was not found.
func (f *File) path() string { return cmp.Or(f.Source, f.Name) }

// writeLCOV writes the files' counts in LCOV's tracefile format, in the
// form lcov 1.x reads (genhtml, CI services): per file SF, FN/FNDA/FNF/FNH,
// DA, LF/LH. machine "" merges every machine and test (lcov.info); a
// machine's name keeps that machine's counts only, over its tests
// (lcov/MACHINE.info): the files, functions and lines it had data for.
func writeLCOV(files []*File, machine string) []byte {
	var b bytes.Buffer
	for _, f := range files {
		s := f.Stat(machine)
		if s.Lines == 0 {
			continue // the machine ran none of the file's code
		}
		b.WriteString("TN:\n")
		fmt.Fprintf(&b, "SF:%s\n", f.path())
		var fns []*Func
		for _, fn := range f.Funcs {
			if _, ok := fn.Count(machine); ok || machine == "" {
				fns = append(fns, fn)
			}
		}
		hit := 0
		for _, fn := range fns {
			fmt.Fprintf(&b, "FN:%d,%s\n", fn.Start, fn.Name)
		}
		for _, fn := range fns {
			n, _ := fn.Count(machine)
			fmt.Fprintf(&b, "FNDA:%d,%s\n", n, fn.Name)
			if n > 0 {
				hit++
			}
		}
		fmt.Fprintf(&b, "FNF:%d\nFNH:%d\n", len(fns), hit)
		for _, l := range f.Lines {
			if n, ok := l.Count(machine); ok {
				fmt.Fprintf(&b, "DA:%d,%d\n", l.Number, n)
			}
		}
		fmt.Fprintf(&b, "LF:%d\nLH:%d\nend_of_record\n", s.Lines, s.Covered)
	}
	return b.Bytes()
}

// Cobertura's XML, in the shape of its DTD (coverage-04.dtd): coverage
// holds sources and packages; a package (here a directory) holds classes
// (here files), a class holds methods (functions) and lines, a method
// holds its lines. vmlab counts lines, not branches: branch rates are 0
// and every line has branch="false".
type (
	cobCoverage struct {
		XMLName         xml.Name    `xml:"coverage"`
		LineRate        string      `xml:"line-rate,attr"`
		BranchRate      string      `xml:"branch-rate,attr"`
		LinesCovered    int         `xml:"lines-covered,attr"`
		LinesValid      int         `xml:"lines-valid,attr"`
		BranchesCovered int         `xml:"branches-covered,attr"`
		BranchesValid   int         `xml:"branches-valid,attr"`
		Complexity      string      `xml:"complexity,attr"`
		Version         string      `xml:"version,attr"`
		Timestamp       int64       `xml:"timestamp,attr"`
		Sources         *cobSources `xml:"sources"`
		Packages        cobPackages `xml:"packages"`
	}
	cobPackage struct {
		Name       string     `xml:"name,attr"`
		LineRate   string     `xml:"line-rate,attr"`
		BranchRate string     `xml:"branch-rate,attr"`
		Complexity string     `xml:"complexity,attr"`
		Classes    cobClasses `xml:"classes"`
		stat       Stat
	}
	cobClass struct {
		Name       string     `xml:"name,attr"`
		Filename   string     `xml:"filename,attr"`
		LineRate   string     `xml:"line-rate,attr"`
		BranchRate string     `xml:"branch-rate,attr"`
		Complexity string     `xml:"complexity,attr"`
		Methods    cobMethods `xml:"methods"`
		Lines      cobLines   `xml:"lines"`
	}
	cobMethod struct {
		Name       string   `xml:"name,attr"`
		Signature  string   `xml:"signature,attr"`
		LineRate   string   `xml:"line-rate,attr"`
		BranchRate string   `xml:"branch-rate,attr"`
		Complexity string   `xml:"complexity,attr"`
		Lines      cobLines `xml:"lines"`
	}
	// The DTD wants every list's element, also when the list is empty:
	// the wrappers below make encoding/xml write it.
	cobSources struct {
		Source []string `xml:"source"`
	}
	cobPackages struct {
		Package []*cobPackage `xml:"package"`
	}
	cobClasses struct {
		Class []*cobClass `xml:"class"`
	}
	cobMethods struct {
		Method []cobMethod `xml:"method"`
	}
	cobLines struct {
		Line []cobLine `xml:"line"`
	}
	cobLine struct {
		Number int    `xml:"number,attr"`
		Hits   int64  `xml:"hits,attr"`
		Branch string `xml:"branch,attr"`
	}
)

// cobDoctype is Cobertura's document type; CI readers accept the report
// without it, xmllint --valid checks it against the DTD with it.
const cobDoctype = `<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">` + "\n"

func rate(s Stat) string {
	if s.Lines == 0 {
		return "0"
	}
	return strconv.FormatFloat(float64(s.Covered)/float64(s.Lines), 'f', 4, 64)
}

// writeCobertura writes the files' merged counts as Cobertura XML. File
// names are relative to the one source root, the directory that holds
// every source found; files whose source was not found keep their names.
func writeCobertura(files []*File, now time.Time) ([]byte, error) {
	root := sourceRoot(files)
	doc := cobCoverage{Complexity: "0", BranchRate: "0", Version: "vmlab", Timestamp: now.Unix()}
	if root != "" {
		doc.Sources = &cobSources{Source: []string{root}}
	}
	pkgs := map[string]*cobPackage{}
	var total Stat
	for _, f := range files {
		name := f.Name
		if f.Source != "" && root != "" {
			name, _ = filepath.Rel(root, f.Source)
		}
		dir := filepath.Dir(name)
		p := pkgs[dir]
		if p == nil {
			p = &cobPackage{Name: strings.ReplaceAll(dir, "/", "."), BranchRate: "0", Complexity: "0"}
			pkgs[dir] = p
			doc.Packages.Package = append(doc.Packages.Package, p)
		}
		s := f.Stat("")
		p.stat.add(s)
		total.add(s)
		c := &cobClass{Name: name, Filename: name, LineRate: rate(s), BranchRate: "0", Complexity: "0", Lines: toCobLines(f.Lines)}
		for _, fn := range f.Funcs {
			lines := f.FuncLines(fn)
			c.Methods.Method = append(c.Methods.Method, cobMethod{Name: fn.Name, Signature: "", LineRate: rate(statLines(lines, "")), BranchRate: "0", Complexity: "0", Lines: toCobLines(lines)})
		}
		p.Classes.Class = append(p.Classes.Class, c)
	}
	for _, p := range doc.Packages.Package {
		p.LineRate = rate(p.stat)
	}
	slices.SortFunc(doc.Packages.Package, func(a, b *cobPackage) int { return cmp.Compare(a.Name, b.Name) })
	doc.LineRate, doc.LinesCovered, doc.LinesValid = rate(total), total.Covered, total.Lines
	out, err := xml.MarshalIndent(doc, "", " ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header+cobDoctype), append(out, '\n')...), nil
}

func toCobLines(lines []*Line) cobLines {
	out := cobLines{Line: make([]cobLine, 0, len(lines))}
	for _, l := range lines {
		n, _ := l.Count("")
		out.Line = append(out.Line, cobLine{Number: l.Number, Hits: n, Branch: "false"})
	}
	return out
}

// sourceRoot is the deepest directory holding every found source.
func sourceRoot(files []*File) string {
	root := ""
	for _, f := range files {
		if f.Source == "" {
			continue
		}
		d := filepath.Dir(f.Source)
		if root == "" {
			root = d
			continue
		}
		for root != "/" && d != root && !strings.HasPrefix(d, root+"/") {
			root = filepath.Dir(root)
		}
	}
	return root
}
