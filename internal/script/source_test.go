package script

import (
	"testing"

	"github.com/vmlab/vmlab/internal/report"
)

// TestSourceLine: a failed test's and subtest's end event carry the
// innermost script line of the failure, as "file:line: text".
func TestSourceLine(t *testing.T) {
	src := "def inner():\n" +
		"    x = 1\n" +
		"    fail(\"boom %d\" % x)\n" +
		"\n" +
		"def test_src():\n" +
		"    subtest(\"s\", inner)\n"
	file, err := Load("src.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	if err := file.Run(t.Context(), "test_src", nil, t.TempDir(), ev); err == nil {
		t.Fatal("test_src passed")
	}
	want := `src.star:3: fail("boom %d" % x)`
	for _, kind := range []report.Kind{report.SubtestEnd, report.TestEnd} {
		ends := ev.find(kind)
		if len(ends) != 1 || ends[0].Source != want {
			t.Errorf("%s: got %+v, want source %q", kind, ends, want)
		}
	}
}
