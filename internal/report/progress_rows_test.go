package report

import "testing"

// TestProgressOneRow: a window with room for a single line of the block
// shows the first machine on it and counts the others, rather than a
// line that only counts them all.
func TestProgressOneRow(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Size: func() (int, int) { return 60, 3 }})
	lt.emit(0, Event{Kind: TestStart})
	lt.emit(0, Event{Kind: BootStart, Machine: "a"})
	lt.emit(0, Event{Kind: BootStart, Machine: "b"})
	lt.emit(0, Event{Kind: BootStart, Machine: "c"})
	lt.tick(1.5)
	lt.wantBlock("3 rows",
		"RUN  t",
		"a  booting 1.5s  … and 2 more")
	lt.sink.Close()
}
