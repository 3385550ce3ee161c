package script

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/report"
)

// TestLoadStops: a file whose top level never ends stops when the load's
// context does (the CLI's -timeout, Ctrl-C), with the context's cause.
func TestLoadStops(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want string
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeoutCause(context.Background(), 100*time.Millisecond, errors.New("loading took longer than -timeout 100ms"))
		}, "loading took longer than -timeout 100ms"},
		{"interrupt", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("interrupted by interrupt")) })
			return ctx, func() { cancel(nil) }
		}, "interrupted by interrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := LoadContext(ctx, "loop.star", []byte("while True:\n    pass\ndef test():\n    pass\n"))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "loop.star:1:") {
					t.Errorf("got %v, want an error at loop.star:1 saying %q", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the endless top level still runs 10 s after its context ended")
			}
		})
	}
}

// TestDeepBacktrace: infinite recursion (Starlark stops it at 100,000
// frames) is reported with the first and last frames and the count of
// those between, in load errors and in test failures alike.
func TestDeepBacktrace(t *testing.T) {
	src := "def f(n):\n    return f(n + 1)\n\ndef test_recurse():\n    f(0)\n"
	_, err := Load("deep.star", []byte(src+"f(0)\n"))
	if err == nil {
		t.Fatal("the recursing top level loaded")
	}
	file, loadErr := Load("deep.star", []byte(src))
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	ev := &events{}
	runErr := file.Run(t.Context(), "test_recurse", nil, t.TempDir(), ev)
	ends := ev.find(report.TestEnd)
	if runErr == nil || len(ends) != 1 {
		t.Fatalf("got %v and test ends %+v, want one failure", runErr, ends)
	}
	for name, text := range map[string]string{"load error": err.Error(), "test failure": ends[0].Where} {
		lines := strings.Count(text, "\n") + 1
		if lines > 30 {
			t.Errorf("%s: got %d lines, want at most 30", name, lines)
		}
		for _, want := range []string{"Traceback (most recent call last):", "deep.star:2:13: in f", "frames elided", "stack overflow"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
	}
	if !strings.Contains(ends[0].Where, "deep.star:5:6: in test_recurse") {
		t.Errorf("the test failure lacks its first frame:\n%s", ends[0].Where)
	}
}

// TestShortBacktrace: a shallow stack is shown whole, as Starlark shows it.
func TestShortBacktrace(t *testing.T) {
	_, err := starlark.ExecFileOptions(fileOptions, &starlark.Thread{}, "short.star", "def f():\n    fail('no')\nf()\n", nil)
	var evalErr *starlark.EvalError
	if !errors.As(err, &evalErr) {
		t.Fatalf("got %v, want an EvalError", err)
	}
	if got, want := backtrace(evalErr), evalErr.Backtrace(); got != want {
		t.Errorf("got\n%s\nwant Starlark's own\n%s", got, want)
	}
}

// TestPanicIsAFailure: a panic in the driver's code while a test runs (here
// a builtin) fails that test with the panic's stack, and the next test
// runs.
func TestPanicIsAFailure(t *testing.T) {
	builtins["go_panic"] = func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		// Called with no arguments: a runtime panic, as a driver bug's.
		return args[0], nil
	}
	t.Cleanup(func() { delete(builtins, "go_panic") })
	file, err := Load("panic.star", []byte("def test_panics():\n    subtest('inner', go_panic)\n\ndef test_after():\n    log('still here')\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	err = file.Run(t.Context(), "test_panics", nil, t.TempDir(), ev)
	var internal *InternalError
	if !errors.As(err, &internal) {
		t.Fatalf("got %T %v, want an *InternalError", err, err)
	}
	ends := ev.find(report.TestEnd)
	if len(ends) != 1 || ends[0].Passed {
		t.Fatalf("got test ends %+v, want one failure", ends)
	}
	if want := "internal error in vmlab"; !strings.Contains(ends[0].Error, want) || !strings.Contains(ends[0].Error, "index out of range [0] with length 0") {
		t.Errorf("got error %q, want %q and the panic", ends[0].Error, want)
	}
	if !strings.Contains(ends[0].Where, "goroutine ") || !strings.Contains(ends[0].Where, "robust_test.go") {
		t.Errorf("got where %q, want the panicking goroutine's stack", ends[0].Where)
	}
	if err := file.Run(t.Context(), "test_after", nil, t.TempDir(), ev); err != nil {
		t.Errorf("the test after the panic: %v", err)
	}
}

// TestPanicOnABootGoroutine: a panic on a goroutine start_all starts (one
// per machine) is that test's failure too, not the end of the run.
func TestPanicOnABootGoroutine(t *testing.T) {
	file, err := Load("each.star", []byte("a = machine()\nb = machine()\ndef test():\n    pass\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{file: file}
	err = r.each(func(m *machineValue) error {
		if m.name == "b" {
			panic("boom in " + m.name)
		}
		return nil
	})
	var internal *InternalError
	if !errors.As(err, &internal) || internal.Value != "boom in b" || !strings.Contains(string(internal.Stack), "robust_test.go") {
		t.Errorf("got %v, want an *InternalError with the panic and its stack", err)
	}
}
