package report

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScreenshotInReports: a step that saved a screenshot shows it inline
// in report.html (a data: URL, so the page needs nothing beside it) and
// names the file in junit.xml; a PNG that cannot be read is linked only.
func TestScreenshotInReports(t *testing.T) {
	dir := t.TempDir()
	shot := filepath.Join(dir, "test_x", "console.png")
	os.MkdirAll(filepath.Dir(shot), 0o700)
	png := []byte("\\x89PNG not really")
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "test_x", "gone.png")
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "test_x"},
		{Time: at(1), Kind: Command, Test: "test_x", Machine: "desk", Command: `screenshot("console")`, File: shot, Duration: 35 * time.Millisecond},
		{Time: at(2), Kind: Command, Test: "test_x", Machine: "desk", Command: `screenshot("gone")`, File: gone, Duration: 35 * time.Millisecond},
		{Time: at(3), Kind: TestEnd, Test: "test_x", Passed: true, Duration: 3 * time.Second},
	}
	html, junit := filepath.Join(dir, "report.html"), filepath.Join(dir, "junit.xml")
	if err := emitAll(NewFiles(HTMLFile(html), JUnitFile(junit)), evs); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(html)
	inline := `<img class="shot" src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"`
	if n := strings.Count(string(page), `<img class="shot"`); n != 1 || !strings.Contains(string(page), inline) {
		t.Errorf("report.html has %d screenshots inline, want 1, the readable one:\n%s", n, page)
	}
	for _, want := range []string{`saved <a href="./test_x/console.png">`, `saved <a href="./test_x/gone.png">`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	x, _ := os.ReadFile(junit)
	if !strings.Contains(string(x), "    saved "+shot) {
		t.Errorf("junit.xml does not name the screenshot saved:\n%s", x)
	}
}

// TestScreenshotAttachments: junit.xml attaches each screenshot a
// testcase's timeline saved that exists, as CI systems read attachments
// (a "[[ATTACHMENT|path]]" line in system-out), newest first: the one
// taken when the test failed, in a subtest or not, comes first.
func TestScreenshotAttachments(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, "test_x", name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("\x89PNG"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first, inSub, failure := file("first.png"), file("sub.png"), file("failure-desk.png")
	copied := file("log.txt")
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "f.test_x"},
		{Time: at(1), Kind: Command, Test: "f.test_x", Machine: "desk", Command: `screenshot("first")`, File: first},
		{Time: at(2), Kind: Command, Test: "f.test_x", Machine: "desk", Command: `screenshot("gone")`, File: filepath.Join(dir, "gone.png")},
		{Time: at(3), Kind: Command, Test: "f.test_x", Machine: "desk", Command: `copy_from_vm("/log.txt")`, File: copied},
		{Time: at(4), Kind: SubtestStart, Test: "f.test_x", Path: []string{"sub"}},
		{Time: at(5), Kind: Command, Test: "f.test_x", Path: []string{"sub"}, Machine: "desk", Command: `screenshot("sub")`, File: inSub},
		{Time: at(6), Kind: SubtestEnd, Test: "f.test_x", Path: []string{"sub"}, Passed: true},
		{Time: at(7), Kind: Command, Test: "f.test_x", Machine: "desk", Command: "screenshot (the test failed)", File: failure},
		{Time: at(8), Kind: TestEnd, Test: "f.test_x", Error: "boom"},
	}
	junit := filepath.Join(dir, "junit.xml")
	if err := emitAll(NewJUnit(junit), evs); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(junit)
	var got []string
	for _, l := range strings.Split(string(x), "\n") {
		if strings.HasPrefix(l, "[[ATTACHMENT|") {
			got = append(got, l)
		}
	}
	att := func(p string) string { return "[[ATTACHMENT|" + p + "]]" }
	want := []string{att(failure), att(inSub), att(first), att(inSub)} // the test's, then the subtest's
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got attachment lines\n%s\nwant\n%s\nin\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), x)
	}
}

// TestScreenshotOnlyFromReportDir: report.html inlines only regular PNG
// files under its own directory. A merged shard's events could name any
// host file: outside the directory, through "..", or a symbolic link in
// it (to a file outside, or to a directory outside). None is read. Before,
// each was inlined.
func TestScreenshotOnlyFromReportDir(t *testing.T) {
	host := t.TempDir() // the host's files, outside the report
	secret := filepath.Join(host, "secret.png")
	if err := os.WriteFile(secret, []byte("host secret!"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "t"), 0o700)
	link := filepath.Join(dir, "t", "shot.png")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(dir, "t", "hostdir")); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "t", "own.png")
	os.WriteFile(own, []byte("own shot!"), 0o600)
	files := []string{
		secret,
		filepath.Join(dir, "t", "..", "..", filepath.Base(host), "secret.png"),
		link,
		filepath.Join(dir, "t", "hostdir", "secret.png"),
		own,
	}
	evs := []Event{{Time: at(0), Kind: TestStart, Test: "t"}}
	for i, f := range files {
		evs = append(evs, Event{Time: at(float64(i + 1)), Kind: Command, Test: "t", Machine: "m", Command: `screenshot("x")`, File: f})
	}
	evs = append(evs, Event{Time: at(9), Kind: TestEnd, Test: "t", Passed: true})
	html := filepath.Join(dir, "report.html")
	if err := emitAll(NewFiles(HTMLFile(html)), evs); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(html)
	if leaked := base64.StdEncoding.EncodeToString([]byte("host secret!")); strings.Contains(string(page), leaked) {
		t.Error("report.html inlines the host file outside its directory")
	}
	if n := strings.Count(string(page), `<img class="shot"`); n != 1 || !strings.Contains(string(page), base64.StdEncoding.EncodeToString([]byte("own shot!"))) {
		t.Errorf("report.html has %d screenshots inline, want 1, its own", n)
	}
}
