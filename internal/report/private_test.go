package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportFilesPrivate: junit.xml and report.html are written 0600, also
// over files that were readable by others, and carry an internal error's
// stack (a test's recovered panic).
func TestReportFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	junit, html := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "report.html")
	os.WriteFile(junit, []byte("old"), 0o644) // from an earlier run
	sink := NewFiles(JUnitFile(junit), HTMLFile(html))
	sink.Event(Event{Kind: TestStart, Test: "t"})
	sink.Event(Event{Kind: TestEnd, Test: "t", Error: "internal error in vmlab: panic: boom",
		Where: "goroutine 7 [running]:\nvmlab.f()\n\t/src/vmlab/f.go:12 +0x1d"})
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{junit, html} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(path), got)
		}
		data, _ := os.ReadFile(path)
		for _, want := range []string{"panic: boom", "goroutine 7 [running]:", "/src/vmlab/f.go:12"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s lacks %q", filepath.Base(path), want)
			}
		}
	}
	events := filepath.Join(dir, "events.jsonl")
	os.WriteFile(events, []byte("old"), 0o644)
	f, err := Create(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info, _ := f.Stat(); info.Mode().Perm() != 0o600 || info.Size() != 0 {
		t.Errorf("Create over an old 0644 file: got mode %v, size %d; want 0600, empty", info.Mode().Perm(), info.Size())
	}
}
