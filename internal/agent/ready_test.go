package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyFileCreated(t *testing.T) {
	tests := []struct {
		name   string
		create func(dir string) error
		path   string
	}{
		{"in an existing directory", func(dir string) error { return os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644) }, "ready"},
		{"under directories made later", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "a/b"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "a/b/ready"), nil, 0o644)
		}, "a/b/ready"},
		{"renamed into place", func(dir string) error {
			tmp := filepath.Join(dir, ".ready.tmp")
			if err := os.WriteFile(tmp, nil, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, filepath.Join(dir, "ready"))
		}, "ready"},
		{"a directory", func(dir string) error { return os.Mkdir(filepath.Join(dir, "ready.d"), 0o755) }, "ready.d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- waitFileCreated(ctx, filepath.Join(dir, tt.path)) }()
			// Whether the watch is set before or after the file appears,
			// the wait must end.
			if err := tt.create(dir); err != nil {
				t.Fatal(err)
			}
			if err := <-res; err != nil {
				t.Errorf("got %v, want the file seen", err)
			}
		})
	}
}

// TestReadyFileQuiet: an event about another file costs the wait one look,
// and then it sleeps again; it looked again and again, spinning on the
// event its own watch's removal queued.
func TestReadyFileQuiet(t *testing.T) {
	var looks atomic.Int64
	fileWaitLooked = func() { looks.Add(1) }
	t.Cleanup(func() { fileWaitLooked = func() {} })
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- waitFileCreated(ctx, filepath.Join(dir, "ready")) }()
	for looks.Load() == 0 {
		runtime.Gosched()
	}
	// Other files, until the wait has seen one (its watch is set).
	base, written := looks.Load(), 0
	for looks.Load() == base {
		if ctx.Err() != nil {
			t.Fatal("the wait never looked again while other files appeared")
		}
		if err := os.WriteFile(filepath.Join(dir, "other"+strconv.Itoa(written)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		written++
		runtime.Gosched()
	}
	// Work that takes a while and tells the wait nothing.
	other := t.TempDir()
	for i := range 200 {
		name := filepath.Join(other, strconv.Itoa(i))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(name)
	}
	// At most a look per file written, and the one after the watch was set.
	if n := looks.Load() - base; n > int64(written)+1 {
		t.Errorf("the wait looked %d times for %d files that are not its own, want at most %d", n, written, written+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Errorf("got %v, want the file seen", err)
	}
}

func TestReadyFileStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() { res <- waitFileCreated(ctx, filepath.Join(t.TempDir(), "never")) }()
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end within 10 s of its cancel")
	}
}

// TestReadyJournalLine runs the check against a stand-in for journalctl
// that prints the journal's lines, then follows forever.
func TestReadyJournalLine(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "journalctl")
	script := "#!/bin/sh\necho \"$@\" > " + args + "\nprintf 'starting\\nlistening on 0.0.0.0:8080\\n'\nexec sleep 1000\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctlPath
	t.Cleanup(func() { journalctlPath = old })
	journalctlPath = fake
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := waitJournalLine(ctx, regexp.MustCompile(`listening on .*:\d+`), "abc123"); err != nil {
		t.Fatalf("got %v, want the line found", err)
	}
	got, _ := os.ReadFile(args)
	if want := "--follow --lines=all --output=cat --no-pager _SYSTEMD_INVOCATION_ID=abc123\n"; string(got) != want {
		t.Errorf("journalctl ran with %q, want %q", got, want)
	}
	// A journal without the line: the check waits until it is stopped.
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := waitJournalLine(ctx, regexp.MustCompile(`never`), "abc123"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the deadline", err)
	}
}

func TestReadyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := readyCheckMain(ctx, []string{"port", port}); err != nil {
		t.Errorf("got %v, want the open port seen", err)
	}
}

func TestReadyCheckArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: vmlab-ready port N | file PATH | log REGEX"},
		{[]string{"port", "http"}, `port "http": want 1 to 65535`},
		{[]string{"port", "0"}, `port "0": want 1 to 65535`},
		{[]string{"log", "("}, "log pattern: error parsing regexp"},
		{[]string{"log", "x"}, "no $INVOCATION_ID: not run by systemd"},
		{[]string{"socket", "/run/x"}, `unknown check "socket"`},
	}
	t.Setenv("INVOCATION_ID", "")
	for _, tt := range tests {
		err := readyCheckMain(t.Context(), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
