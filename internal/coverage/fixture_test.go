package coverage

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures are one small program in Go and one in C, each run on the
// host as two "machines": "server" runs it with the argument server,
// "client" with client. Lines marked "// both" run on both, "// server"
// only on the server, "// client" only on the client, "// none" nowhere.

const goLib = `package lib

func Both() int {
	return 1 // both
}

func Serve(x int) int {
	if x > 0 { // server
		return x // server
	}
	return 0 // none
}

func Call() string {
	return "c" // client
}
`

const goMain = `package main

import (
	"fmt"
	"os"

	"example.com/covdemo/lib"
)

func main() {
	fmt.Println(lib.Both()) // both
	if os.Args[1] == "server" {
		fmt.Println(lib.Serve(3)) // server
	} else {
		fmt.Println(lib.Call()) // client
	}
}
`

const cSource = `#include <stdio.h>
#include <string.h>

static int both(void)
{
	return 1; /* both */
}

static int serve(int x)
{
	if (x > 0) /* server */
		return x; /* server */
	return 0; /* none */
}

static const char *call(void)
{
	return "c"; /* client */
}

int main(int argc, char **argv)
{
	printf("%d\n", both()); /* both */
	if (strcmp(argv[1], "server") == 0)
		printf("%d\n", serve(3)); /* server */
	else
		printf("%s\n", call()); /* client */
	return 0;
}
`

// skipShort skips the tests that build and run programs (1 to 2 s each
// under TCG's neighbours): -short runs only those that need no toolchain.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs with go build -cover or gcc --coverage")
	}
}

// writeFiles writes name→content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildGo writes the Go fixture (lib with extra appended to lib.go) into
// src and builds it with -cover.
func buildGo(t *testing.T, src, extra string) string {
	t.Helper()
	skipShort(t)
	writeFiles(t, src, map[string]string{
		"go.mod":     "module example.com/covdemo\n\ngo 1.22\n",
		"lib/lib.go": goLib + extra,
		"main.go":    goMain,
	})
	bin := filepath.Join(src, "covdemo")
	run(t, src, []string{"GOFLAGS=", "GOWORK=off"}, "go", "build", "-cover", "-coverpkg=./...", "-o", bin, ".")
	return bin
}

// buildC writes the C fixture into src and builds it with --coverage
// (object and notes file in src).
func buildC(t *testing.T, src, source string) string {
	t.Helper()
	skipShort(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	writeFiles(t, src, map[string]string{"demo.c": source})
	run(t, src, nil, "gcc", "--coverage", "-O0", "-c", "demo.c", "-o", "demo.o")
	run(t, src, nil, "gcc", "--coverage", "demo.o", "-o", "demo")
	return filepath.Join(src, "demo")
}

// runGo runs bin as machine in test, its data where a -coverage run puts it.
func runGo(t *testing.T, dir, test, machine, bin, arg string) {
	t.Helper()
	out := GuestData(MachineDir(dir, test, machine), GoDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, filepath.Dir(bin), []string{"GOCOVERDIR=" + out}, bin, arg)
}

func runC(t *testing.T, dir, test, machine, bin, arg string) {
	t.Helper()
	out := GuestData(MachineDir(dir, test, machine), GcovDir)
	run(t, filepath.Dir(bin), []string{"GCOV_PREFIX=" + out, "GCOV_PREFIX_STRIP=0"}, bin, arg)
}

// writeState writes machine's state.json.
func writeState(t *testing.T, dir string, st State) {
	t.Helper()
	md := MachineDir(dir, st.Test, st.Machine)
	if err := os.MkdirAll(md, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(md, StateFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// marked returns the numbers of the lines of text that end in the comment
// marker ("// server", "/* server */").
func marked(text, marker string) []int {
	var lines []int
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, "// "+marker) || strings.HasSuffix(l, "/* "+marker+" */") {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// fileNamed is the model's file whose name ends in suffix.
func fileNamed(t *testing.T, m *Model, suffix string) *File {
	t.Helper()
	for _, f := range m.Files {
		if strings.HasSuffix(f.Name, suffix) {
			return f
		}
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	t.Fatalf("no file *%s in the model; files: %v", suffix, names)
	return nil
}

func lineNumbered(f *File, n int) *Line {
	for _, l := range f.Lines {
		if l.Number == n {
			return l
		}
	}
	return nil
}

// testsIn lists the tests with data under dir/raw, as a run passes its
// own to Merge.
func testsIn(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, RawDir))
	var tests []string
	for _, e := range entries {
		tests = append(tests, e.Name())
	}
	return tests
}
