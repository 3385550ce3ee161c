package script

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// runNoLab runs a test of a loaded file without a lab: enough for what
// needs no machine (modules, functions, calls refused before they boot).
func runNoLab(ctx context.Context, f *File, test string) (*events, *run, error) {
	ev := &events{}
	r := &run{ctx: ctx, file: f, test: test, rep: ev}
	thread := &starlark.Thread{Name: test}
	thread.SetLocal(runKey, r)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	_, err := starlark.Call(thread, f.globals[test], nil, nil)
	return ev, r, err
}

func loadTestdata(t *testing.T, name string) *File {
	t.Helper()
	src, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load("testdata/"+name, src)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

// TestModules: re, time and json work as a ported NixOS test uses them
// (the checks are in testdata/modules.star), without an import.
func TestModules(t *testing.T) {
	f := loadTestdata(t, "modules.star")
	for _, test := range []string{"test_re", "test_re_compile", "test_json", "test_time"} {
		t.Run(test, func(t *testing.T) {
			if _, _, err := runNoLab(t.Context(), f, test); err != nil {
				t.Errorf("got %v, want it to pass", err)
			}
		})
	}
	_, _, err := runNoLab(t.Context(), f, "test_bad_pattern")
	if msg, _ := splitError(err); !strings.HasPrefix(msg, "re.search: compiling the pattern (Go's regexp syntax): error parsing regexp: invalid or unsupported Perl syntax: `(?=`") {
		t.Errorf("lookbehind: got %q, want the pattern refused in Go's terms", msg)
	}
}

// TestSleepStops: time.sleep ends when the test is stopped (Ctrl-C,
// -timeout) with the stop's cause, not when its 600 s are up.
func TestSleepStops(t *testing.T) {
	f := loadTestdata(t, "modules.star")
	ctx, cancel := context.WithCancelCause(t.Context())
	time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("interrupted by interrupt")) })
	start := time.Now()
	_, _, err := runNoLab(ctx, f, "test_long_sleep")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the sleep took %v after the stop, want it to end at once", took)
	}
	if err == nil || !strings.Contains(err.Error(), "interrupted by interrupt") {
		t.Errorf("got %v, want the stop's cause", err)
	}
}

// TestSleepAtTopLevel: time.sleep needs a test to stop it; at the top
// level it is refused.
func TestSleepAtTopLevel(t *testing.T) {
	_, err := Load("sleep.star", []byte("time.sleep(1)\ndef test():\n    pass\n"))
	if err == nil || !strings.Contains(err.Error(), "time.sleep(): only a test function can do this") {
		t.Errorf("got %v, want time.sleep refused at the top level", err)
	}
}

// TestModulesDocumented: docs/test-files.md names every member of every
// module as module.member.
func TestModulesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/test-files.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Modules\n")
	if !ok {
		t.Fatal("docs/test-files.md has no section ## Modules")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for name, m := range modules {
		for member := range m.(*starlarkstruct.Module).Members {
			if !strings.Contains(section, "`"+name+"."+member) {
				t.Errorf("docs/test-files.md does not document %s.%s", name, member)
			}
		}
	}
}

// TestModuleAttrChecked: a member a module lacks is refused when the file
// loads, at its file:line:col, with a suggestion; a variable of the
// module's name is the file's own.
func TestModuleAttrChecked(t *testing.T) {
	_, err := Load("m.star", []byte("def test():\n    re.serach('a', 'b')\n    json.dump(1)\n"))
	for _, want := range []string{
		`m.star:2:8: module re has no "serach" (did you mean search?)`,
		`m.star:3:10: module json has no "dump" (did you mean dumps?)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	if _, err := Load("m.star", []byte("def test():\n    re = {'x': 1}\n    re.keys()\n")); err != nil {
		t.Errorf("a local re: got %v, want no error", err)
	}
}

// TestModuleCallChecked: time.sleep's literal arguments are checked when
// the file loads, in the words its call uses.
func TestModuleCallChecked(t *testing.T) {
	_, err := Load("m.star", []byte("def test():\n    time.sleep(-1)\n    time.sleep('5 ticks')\n    time.sleep()\n"))
	for _, want := range []string{
		`m.star:2:16: time.sleep(): seconds wants a duration of 0 or more, such as "30s" or a number of seconds, got -1`,
		`m.star:3:16: time.sleep(): seconds wants a duration of 0 or more, such as "30s" or a number of seconds, got "5 ticks"`,
		`m.star:4:10: time.sleep() is missing required argument seconds`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

// TestModuleFunctionTable walks the module functions' signatures as
// TestFunctionTable walks the functions'.
func TestModuleFunctionTable(t *testing.T) {
	for name, fn := range moduleFunctions {
		t.Run(name, func(t *testing.T) { walkSignature(t, &fn.signature, "", fastDecl) })
	}
}
