package coverage

import (
	"encoding/binary"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// sample is a model of two machines in one test, made by hand: line 1 of
// a.c runs on both, 2 on the server only, 3 on the client only, 4 on
// neither, and the client never ran b.go.
func sample() *Model {
	srv := &Run{Test: "t1", Machine: "server", HasGcov: true}
	cli := &Run{Test: "t1", Machine: "client", HasGcov: true}
	b := newBuilder([]*Run{cli, srv})
	a := b.file("/src/a.c", "c")
	a.Source = "/src/a.c"
	for n, counts := range map[int][2]int64{1: {2, 3}, 2: {5, 0}, 3: {0, 1}, 4: {0, 0}} {
		a.line(srv, n, counts[0], false)
		a.line(cli, n, counts[1], false)
	}
	f := a.fn("f", 1, 4)
	f.Hits[srv], f.Hits[cli] = 1, 1
	g := b.file("example.com/x/b.go", "go")
	g.line(srv, 10, 1, true)
	g.line(srv, 10, 4, true) // a second block on the line: the larger count stays
	g.line(srv, 11, 0, true)
	return b.model()
}

func TestModelCounts(t *testing.T) {
	m := sample()
	if got := strings.Join(m.Machines, ","); got != "client,server" {
		t.Fatalf("machines %q, want client,server", got)
	}
	a, b := m.Files[0], m.Files[1]
	if a.Name != "/src/a.c" || b.Name != "example.com/x/b.go" {
		t.Fatalf("files %q, %q: want sorted by name", a.Name, b.Name)
	}
	tests := []struct {
		name      string
		line      *Line
		machine   string
		wantCount int64
		wantOK    bool
	}{
		{"both, all machines", a.Lines[0], "", 5, true},
		{"both, server", a.Lines[0], "server", 2, true},
		{"server only, client", a.Lines[1], "client", 0, true},
		{"go line, larger block kept", b.Lines[0], "server", 4, true},
		{"go line, client never ran it", b.Lines[0], "client", 0, false},
	}
	for _, tt := range tests {
		n, ok := tt.line.Count(tt.machine)
		if n != tt.wantCount || ok != tt.wantOK {
			t.Errorf("%s: count %d, %v; want %d, %v", tt.name, n, ok, tt.wantCount, tt.wantOK)
		}
	}
	for _, tt := range []struct {
		machine string
		want    Stat
	}{{"", Stat{6, 4}}, {"server", Stat{6, 3}}, {"client", Stat{4, 2}}} {
		if got := m.Stat(tt.machine); got != tt.want {
			t.Errorf("Stat(%q) = %+v, want %+v", tt.machine, got, tt.want)
		}
	}
}

func TestRunStat(t *testing.T) {
	m := sample()
	for _, r := range m.Runs {
		want := map[string]Stat{"server": {6, 3}, "client": {4, 2}}[r.Machine]
		if got := m.RunStat(r); got != want {
			t.Errorf("RunStat(%s in %s) = %+v, want %+v", r.Machine, r.Test, got, want)
		}
	}
}

func TestLineClass(t *testing.T) {
	m := sample()
	a := m.Files[0]
	for i, want := range []string{"all both", "only only server", "only only client", "miss none"} {
		class, on := lineClass(m, a.Lines[i])
		if got := class + " " + on; got != want {
			t.Errorf("line %d: %q, want %q", a.Lines[i].Number, got, want)
		}
	}
}

func TestLCOV(t *testing.T) {
	got := string(writeLCOV(sample().Files, ""))
	for _, want := range []string{
		"SF:/src/a.c\nFN:1,f\nFNDA:2,f\nFNF:1\nFNH:1\nDA:1,5\nDA:2,5\nDA:3,1\nDA:4,0\nLF:4\nLH:3\nend_of_record\n",
		"SF:example.com/x/b.go\nFNF:0\nFNH:0\nDA:10,4\nDA:11,0\nLF:2\nLH:1\nend_of_record\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lcov.info:\n%s\nwant the record\n%s", got, want)
		}
	}
}

// TestCoberturaShape checks the XML against the rules of Cobertura's DTD
// (coverage-04.dtd): each element's required attributes and the children
// it must have, in order.
func TestCoberturaShape(t *testing.T) {
	data, err := writeCobertura(sample().Files, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]struct {
		attrs    []string
		children []string // required, in order
	}{
		"coverage": {[]string{"line-rate", "branch-rate", "lines-covered", "lines-valid", "branches-covered", "branches-valid", "complexity", "version", "timestamp"}, []string{"packages"}},
		"sources":  {nil, nil},
		"source":   {nil, nil},
		"packages": {nil, nil},
		"package":  {[]string{"name", "line-rate", "branch-rate", "complexity"}, []string{"classes"}},
		"classes":  {nil, nil},
		"class":    {[]string{"name", "filename", "line-rate", "branch-rate", "complexity"}, []string{"methods", "lines"}},
		"methods":  {nil, nil},
		"method":   {[]string{"name", "signature", "line-rate", "branch-rate", "complexity"}, []string{"lines"}},
		"lines":    {nil, nil},
		"line":     {[]string{"number", "hits"}, nil},
	}
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var stack [][]string // children seen, per open element
	var names []string
	counts := map[string]int{}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			counts[name]++
			rule, ok := rules[name]
			if !ok {
				t.Errorf("element %s is not in the DTD", name)
			}
			have := map[string]bool{}
			for _, a := range tok.Attr {
				have[a.Name.Local] = true
			}
			for _, a := range rule.attrs {
				if !have[a] {
					t.Errorf("element %s lacks required attribute %s", name, a)
				}
			}
			if len(stack) > 0 {
				stack[len(stack)-1] = append(stack[len(stack)-1], name)
			}
			stack, names = append(stack, nil), append(names, name)
		case xml.EndElement:
			name, kids := names[len(names)-1], stack[len(stack)-1]
			stack, names = stack[:len(stack)-1], names[:len(names)-1]
			want := rules[name].children
			if name == "coverage" && len(kids) == 2 {
				want = []string{"sources", "packages"}
			}
			if want != nil && strings.Join(kids, ",") != strings.Join(want, ",") {
				t.Errorf("element %s has children %v, want %v", name, kids, want)
			}
		}
	}
	for name, n := range map[string]int{"coverage": 1, "package": 2, "class": 2, "method": 1, "line": 10} {
		if counts[name] != n {
			t.Errorf("%d %s elements, want %d", counts[name], name, n)
		}
	}
	for _, want := range []string{`lines-covered="4" lines-valid="6"`, `<source>/src</source>`, `filename="a.c"`, `filename="example.com/x/b.go"`, `<line number="2" hits="5" branch="false">`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("cobertura.xml lacks %s:\n%s", want, data)
		}
	}
}

func TestSummaryString(t *testing.T) {
	s := Summary{
		Dir:      "/out",
		Files:    2,
		Total:    Stat{10, 7},
		Machines: []MachineSummary{{Name: "client", Stat: Stat{10, 4}, Partial: []string{"t1: crashed"}}, {Name: "server", Stat: Stat{8, 6}}},
		Notes:    []string{"no coverage data from db in test t1: were the binaries built with -cover / --coverage?"},
		Reports:  []string{"/out/index.html", "/out/lcov.info"},
	}
	want := `coverage: 2 source files, 2 machines
  client        40.0% of 10 lines (4 covered)  PARTIAL: t1: crashed
  server        75.0% of 8 lines (6 covered)
  all machines  70.0% of 10 lines (7 covered)
  no coverage data from db in test t1: were the binaries built with -cover / --coverage?
  report: /out/index.html, /out/lcov.info
`
	if got := s.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
}

// metaFile builds a Go meta-data file holding one package per path, in
// the layout parseGoMeta documents.
func metaFile(paths ...string) []byte {
	le := binary.LittleEndian
	var blobs [][]byte
	for i, p := range paths {
		blob := make([]byte, metaPkgHeaderSize)
		le.PutUint32(blob[8:], 1) // path: string 1
		blob[16] = byte(i + 1)    // the package's hash
		blob = binary.AppendUvarint(blob, 2)
		for _, s := range []string{"name", p} {
			blob = binary.AppendUvarint(blob, uint64(len(s)))
			blob = append(blob, s...)
		}
		le.PutUint32(blob, uint32(len(blob)))
		blobs = append(blobs, blob)
	}
	head := make([]byte, metaFileHeaderSize+16*len(paths))
	copy(head, metaMagic)
	le.PutUint32(head[4:], 1)
	le.PutUint64(head[16:], uint64(len(paths)))
	off := len(head)
	for i, b := range blobs {
		le.PutUint64(head[metaFileHeaderSize+8*i:], uint64(off))
		le.PutUint64(head[metaFileHeaderSize+8*len(paths)+8*i:], uint64(len(b)))
		off += len(b)
	}
	for _, b := range blobs {
		head = append(head, b...)
	}
	return head
}

func TestParseGoMeta(t *testing.T) {
	good := metaFile("example.com/a", "example.com/b")
	pkgs, err := parseGoMeta(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Path != "example.com/a" || pkgs[1].Path != "example.com/b" || pkgs[0].Hash == pkgs[1].Hash {
		t.Errorf("packages %+v, want example.com/a and b with different hashes", pkgs)
	}
	v2 := append([]byte(nil), good...)
	v2[4] = 2
	for _, tt := range []struct {
		name, data, want string
	}{
		{"empty", "", "not a Go coverage meta-data file"},
		{"other file", strings.Repeat("x", 100), "not a Go coverage meta-data file"},
		{"version 2", string(v2), "version 2"},
		{"truncated tables", string(good[:metaFileHeaderSize+8]), "truncated"},
		{"truncated package", string(good[:len(good)-5]), "outside the file"},
	} {
		_, err := parseGoMeta([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

func TestParseGoBlock(t *testing.T) {
	blk, n, err := parseGoBlock("example.com/x/a.go:3.17,5.2 2 7")
	if err != nil || n != 7 || blk != (goBlock{"example.com/x/a.go", 3, 17, 5, 2, 2}) {
		t.Errorf("got %+v, %d, %v", blk, n, err)
	}
	for _, bad := range []string{"", "a.go", "a.go:3.1,2.1 1 1", "a.go:x 1 1"} {
		if _, _, err := parseGoBlock(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
