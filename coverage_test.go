package vmlab_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab"
)

// coverProg is a program built with go build -cover in TestCoverage: it
// says which branch it took.
const coverProg = `package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("with an argument")
		return
	}
	fmt.Println("without")
}
`

// TestCoverage collects a Go program's coverage through the Go API on two
// machines, each running one branch, and merges it with MergeCoverage:
// the report counts each machine's lines and both together.
func TestCoverage(t *testing.T) {
	bootsVMs(t)
	src, bin, cov := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "cov")
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/prog\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(coverProg), 0o644)
	build := exec.Command("go", "build", "-cover", "-o", filepath.Join(bin, "prog"), ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -cover: %v\n%s", err, out)
	}
	t.Run("lab", func(t *testing.T) {
		lab := vmlab.New(t, vmlab.Coverage(cov))
		a := lab.Machine("a", vmlab.Share(bin, "/opt/prog"))
		b := lab.Machine("b", vmlab.Share(bin, "/opt/prog"))
		lab.StartAll(t)
		a.Succeed(t, "/opt/prog/prog")
		b.Succeed(t, "/opt/prog/prog x")
	})
	for _, m := range []string{"a", "b"} {
		counters, _ := filepath.Glob(filepath.Join(cov, "raw", "TestCoverage_lab", m, "guest", "go", "covcounters.*"))
		if len(counters) != 1 {
			t.Errorf("machine %s: got %d counter files, want 1", m, len(counters))
		}
	}
	// The merge finds the sources with go list from the working
	// directory: the program's module.
	t.Chdir(src)
	summary, err := vmlab.MergeCoverage(t.Context(), cov)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(summary, "\n")
	var a, b, all string
	for _, l := range lines {
		switch f := strings.Fields(l); {
		case len(f) > 1 && f[0] == "a":
			a = f[1]
		case len(f) > 1 && f[0] == "b":
			b = f[1]
		case len(f) > 2 && f[0] == "all":
			all = f[2]
		}
	}
	if a == "" || b == "" || all != "100.0%" || a == all || b == all {
		t.Errorf("got machine a %q, b %q, all %q; want each machine part and both together 100.0%%:\n%s", a, b, all, summary)
	}
}
