package agentproto

import (
	"slices"
	"strings"
	"testing"
)

func TestServiceExitString(t *testing.T) {
	tests := []struct {
		name string
		e    ServiceExit
		want string
	}{
		{"status", ServiceExit{Name: "x", Exit: 1}, "service x exited with status 1"},
		{"signal", ServiceExit{Name: "x", Exit: -1, Signal: "segmentation fault", SignalNumber: 11}, "service x was killed by signal 11 (segmentation fault)"},
		{"restart", ServiceExit{Name: "web", Restart: true}, "service web exited with status 0; restarting"},
		{"crash loop", ServiceExit{Name: "web", Exit: 2, Exits: 8, Restart: true}, "service web exited with status 2 (exit 8 since boot); restarting"},
		{"no start", ServiceExit{Name: "x", Exit: -1, Error: `no user "bob"`}, `service x could not start: no user "bob"`},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNoticeLinesBounded(t *testing.T) {
	var lines []string
	for i := range 30 {
		lines = append(lines, strings.Repeat("é", 400)+string(rune('a'+i%26)))
	}
	got := NoticeLines(lines)
	if len(got) != NoticeTail {
		t.Fatalf("got %d lines, want %d", len(got), NoticeTail)
	}
	for _, l := range got {
		if len(l) > MaxNoticeLine+len("…") || !strings.HasSuffix(l, "…") {
			t.Errorf("line of %d bytes (%q...): want at most %d and a mark", len(l), l[:8], MaxNoticeLine)
		}
	}
	if b := Encode(Notice{ServiceExit: &ServiceExit{Name: "x", Tail: got}}); len(b) > MaxPayload {
		t.Errorf("a notice of %d bytes does not fit a frame", len(b))
	}
}

func TestTellingLines(t *testing.T) {
	xorg := []string{"Fatal server error:", "(EE) Unrecognized option: -bad", "(EE) ", "", "(EE) ", "  for help. ", "(EE) "}
	want := []string{"(EE) Unrecognized option: -bad", "for help."}
	if got := TellingLines(xorg, 2); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := TellingLines([]string{"", "(II)"}, 5); len(got) != 0 {
		t.Errorf("markers only: got %q, want none", got)
	}
}
