package report

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReadEvents reads back what the JSON lines sink wrote, and a last
// line a killed run left half written.
func TestReadEvents(t *testing.T) {
	var buf bytes.Buffer
	want := sampleRun("/out")
	if err := emitAll(NewJSONLines(&buf), want); err != nil {
		t.Fatal(err)
	}
	whole := buf.String()
	got, truncated, err := ReadEvents(strings.NewReader(whole))
	if err != nil || truncated || len(got) != len(want) {
		t.Fatalf("got %d events, truncated %v, error %v; want %d, false, nil", len(got), truncated, err, len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d: got time %v, want %v", i, got[i].Time, want[i].Time)
		}
		got[i].Time = want[i].Time
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	cut := whole[:len(whole)-10] // the last line half written
	got, truncated, err = ReadEvents(strings.NewReader(cut))
	if err != nil || !truncated || len(got) != len(want)-1 {
		t.Errorf("cut short: got %d events, truncated %v, error %v; want %d, true, nil", len(got), truncated, err, len(want)-1)
	}

	bad := "{\"kind\":\"test-start\"}\nnot json\n{\"kind\":\"test-end\"}\n"
	if _, _, err := ReadEvents(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad line in the middle: got %v, want an error naming line 2", err)
	}
}

// TestMergedShardHost: a merged report's Shard and Host show in the
// JUnit testcases' properties and in the HTML report, and not in a run's
// own reports.
func TestMergedShardHost(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []Event{
		{Time: t0, Kind: TestStart, Test: "f.test_a", Shard: "2/4", Host: "runner-7"},
		{Time: t0.Add(time.Second), Kind: SubtestStart, Test: "f.test_a", Path: []string{"sub"}},
		{Time: t0.Add(2 * time.Second), Kind: SubtestEnd, Test: "f.test_a", Path: []string{"sub"}, Passed: true},
		{Time: t0.Add(3 * time.Second), Kind: TestEnd, Test: "f.test_a", Passed: true, Duration: 3 * time.Second, Shard: "2/4", Host: "runner-7"},
		{Time: t0, Kind: TestStart, Test: "f.test_b"},
		{Time: t0.Add(time.Second), Kind: TestEnd, Test: "f.test_b", Passed: true, Duration: time.Second},
	}
	got := writeJUnit(t, evs)
	cases := got.Suites[0].Cases
	if len(cases) != 3 {
		t.Fatalf("got %d testcases, want 3", len(cases))
	}
	want := &junitProperties{[]junitProperty{{"shard", "2/4"}, {"host", "runner-7"}}}
	for _, c := range cases[:2] {
		if !reflect.DeepEqual(c.Properties, want) {
			t.Errorf("testcase %s: got properties %+v, want %+v", c.Name, c.Properties, want)
		}
	}
	if cases[2].Properties != nil {
		t.Errorf("testcase %s of no shard: got properties %+v, want none", cases[2].Name, cases[2].Properties)
	}

	path := filepath.Join(t.TempDir(), "report.html")
	if err := emitAll(NewHTML(path), evs); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(page), "shard 2/4 on runner-7"); n != 2 {
		t.Errorf("report.html names test_a's shard and host %d times, want 2 (index and section):\n%s", n, page)
	}
	if strings.Count(string(page), "ran in") != 1 {
		t.Errorf("report.html says where a test ran for a test of no shard:\n%s", page)
	}
}
