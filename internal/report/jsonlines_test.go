package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	want := sampleRun("/out")
	if err := emitAll(NewJSONLines(&buf), want); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d, one per event", len(lines), len(want))
	}
	for i, line := range lines {
		var got Event
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !got.Time.Equal(want[i].Time) {
			t.Errorf("line %d: got time %v, want %v", i+1, got.Time, want[i].Time)
		}
		got.Time = want[i].Time
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d: got %+v, want %+v", i+1, got, want[i])
		}
	}
}

func TestJSONLinesWriteError(t *testing.T) {
	sink := NewJSONLines(failingWriter{})
	err := emitAll(sink, sampleRun("/out"))
	if !errors.Is(err, errWrite) {
		t.Errorf("got %v, want %v", err, errWrite)
	}
	if again := sink.Close(); again != err {
		t.Errorf("second Close: got %v, want %v", again, err)
	}
}
