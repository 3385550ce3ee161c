package pty

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSizeAndRaw(t *testing.T) {
	ctl, term, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	if !IsTerminal(term) || !IsTerminal(ctl) {
		t.Fatal("a pty end is not a terminal")
	}
	want := Size{Rows: 33, Cols: 101}
	if err := SetSize(ctl, want); err != nil {
		t.Fatal(err)
	}
	if got, err := GetSize(term); err != nil || got != want {
		t.Fatalf("size: got %v, %v; want %v", got, err, want)
	}
	restore, err := MakeRaw(term)
	if err != nil {
		t.Fatal(err)
	}
	tio, _ := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
	if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("raw mode keeps echo, canonical input or signals: lflag %#x", tio.Lflag)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	tio, _ = unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
	if tio.Lflag&unix.ISIG == 0 {
		t.Error("restore did not bring back signals")
	}
}

func TestWatchSize(t *testing.T) {
	ctl, term, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	SetSize(ctl, Size{Rows: 10, Cols: 20})
	ctx, cancel := context.WithCancel(context.Background())
	sizes := WatchSize(ctx, term)
	if got := <-sizes; got != (Size{Rows: 10, Cols: 20}) {
		t.Fatalf("first size: got %v", got)
	}
	SetSize(ctl, Size{Rows: 11, Cols: 21})
	// The pty is not our controlling terminal, so no SIGWINCH comes:
	// send one as the kernel would.
	unix.Kill(unix.Getpid(), unix.SIGWINCH)
	select {
	case got := <-sizes:
		if got != (Size{Rows: 11, Cols: 21}) {
			t.Fatalf("after resize: got %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no size after SIGWINCH")
	}
	cancel()
	for range sizes {
	}
}
