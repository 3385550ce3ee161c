package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// buildCoverPrograms builds testdata/coverage's Go program with
// go build -cover and its C program with gcc --coverage into a new
// directory, which it returns.
func buildCoverPrograms(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	src := t.TempDir()
	for from, to := range map[string]string{"prog.go": "prog.go", "go.mod.txt": "go.mod", "cprog.c": "cprog.c"} {
		b, err := os.ReadFile(filepath.Join("testdata/coverage", from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"go", "build", "-cover", "-o", filepath.Join(bin, "prog"), "."},
		{"gcc", "--coverage", "-o", filepath.Join(bin, "cprog"), "cprog.c"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			if _, lookErr := exec.LookPath(args[0]); lookErr != nil {
				t.Skipf("%s is not installed: %v", args[0], lookErr)
			}
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return bin
}

// TestRunCoverage runs testdata/coverage/coverage.star with -coverage: a
// Go program built with -cover run by succeed and as a service (as a user
// that is not root) on two fast-mode machines and on a systemd one, a C
// program built with --coverage, a service that a signal ends and a
// machine crashed mid-test. Each
// machine's raw directory holds what its processes wrote, and state.json
// says which machine's data is partial.
func TestRunCoverage(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	bin := buildCoverPrograms(t)
	dir := t.TempDir()
	star, err := os.ReadFile("testdata/coverage/coverage.star")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "coverage.star")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(star), "@BIN@", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cov := filepath.Join(dir, "cov")
	// The merge is called once, after the tests, with the directory;
	// its summary is printed.
	defer func(m func(context.Context, string, []string, func(string, ...any)) (fmt.Stringer, error)) {
		mergeCoverage = m
	}(mergeCoverage)
	var merged []string
	mergeCoverage = func(ctx context.Context, dir string, tests []string, logf func(string, ...any)) (fmt.Stringer, error) {
		states, _ := filepath.Glob(filepath.Join(dir, coverage.RawDir, "*", "*", coverage.StateFile))
		merged = append(merged, fmt.Sprintf("%s with %d states", dir, len(states)))
		// Before report.html is written, which links it.
		return summary("merged: 42.0% of lines"), os.WriteFile(filepath.Join(dir, coverage.IndexFile), []byte("<html>"), 0o600)
	}
	code, stdout, stderr := run("run", "-coverage", cov, "-out", filepath.Join(dir, "out"), file)
	if code != exitOK {
		t.Fatalf("got exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if want := []string{cov + " with 4 states"}; !slices.Equal(merged, want) || !strings.Contains(stdout, "merged: 42.0% of lines\n") {
		t.Errorf("merge calls: got %q, want %q; stdout:\n%s", merged, want, stdout)
	}
	// Relative to report.html's directory: out/ and cov/ archived
	// together keep the link.
	if html, err := os.ReadFile(filepath.Join(dir, "out", "report.html")); err != nil || !strings.Contains(string(html), `href="../cov/index.html"`) {
		t.Errorf("report.html does not link the merged report as ../cov/index.html (%v)", err)
	}
	raw := func(test, m string, elem ...string) string {
		return filepath.Join(append([]string{coverage.MachineDir(cov, "coverage."+test, m)}, elem...)...)
	}
	for _, tt := range []struct {
		test, machine string
		counters      int // covcounters files: one per process that exited normally
		partial       string
		services      string // state.json's, for the merge to explain missing data
	}{
		// The service's (at the test's end) and succeed's; the client's
		// second run set its own GOCOVERDIR, which wins.
		{"test_fast", "server", 2, "", "prog"},
		{"test_fast", "client", 1, "service sleeper was killed by signal 9 (killed)", "sleeper"},
		{"test_crash", "client", 1, "crashed: crash() killed it", "sleeper"},
		{"test_systemd", "unit", 2, "", "prog"},
	} {
		t.Run(tt.test+"/"+tt.machine, func(t *testing.T) {
			metas, _ := filepath.Glob(raw(tt.test, tt.machine, coverage.GuestDir, coverage.GoDir, "covmeta.*"))
			counters, _ := filepath.Glob(raw(tt.test, tt.machine, coverage.GuestDir, coverage.GoDir, "covcounters.*"))
			if len(metas) != 1 || len(counters) != tt.counters {
				t.Errorf("got %d covmeta and %d covcounters files, want 1 and %d", len(metas), len(counters), tt.counters)
			}
			st := readState(t, raw(tt.test, tt.machine, coverage.StateFile))
			if st.Test != "coverage."+tt.test || st.Machine != tt.machine {
				t.Errorf("state names test %q machine %q, want %q and %q", st.Test, st.Machine, "coverage."+tt.test, tt.machine)
			}
			if got := strings.Join(st.Reasons, "; "); st.Partial != (tt.partial != "") || !strings.Contains(got, tt.partial) {
				t.Errorf("got partial %v (%s), want %v with %q", st.Partial, got, tt.partial != "", tt.partial)
			}
			if got := strings.Join(st.Services, ","); got != tt.services {
				t.Errorf("state names services %q, want %q", got, tt.services)
			}
		})
	}
	// gcov writes the .gcda file under GCOV_PREFIX at the object's
	// absolute build path.
	gcda, _ := filepath.Glob(raw("test_fast", "client", coverage.GuestDir, coverage.GcovDir, bin, "*.gcda"))
	if len(gcda) != 1 {
		all, _ := exec.Command("find", raw("test_fast", "client", coverage.GuestDir, coverage.GcovDir)).CombinedOutput()
		t.Errorf("got %v, want one .gcda file under gcov%s; gcov/ holds:\n%s", gcda, bin, all)
	}
}

func readState(t *testing.T, path string) coverage.State {
	t.Helper()
	var st coverage.State
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Errorf("read the machine's state: %v", err)
	}
	return st
}

// TestRunCoverageShareLinks: a guest's root plants, in its coverage
// share, links to host files in place of the agent's notes and of go/,
// then the machine boots again. No host file is read or changed through
// them: the second boot fails naming the machine and go/, the host
// directory keeps its mode, state.json (beside the share) holds no host
// secret and marks the data excluded, and the merge names the machine.
func TestRunCoverageShareLinks(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	dir, host := t.TempDir(), t.TempDir()
	secret, victim := filepath.Join(host, "secret.txt"), filepath.Join(host, "victim")
	if err := os.WriteFile(secret, []byte("HOSTSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "links.star")
	star := `m = machine()

def test_links():
    m.succeed("ln -s ` + secret + ` /run/vmlab/coverage/vmlab-notes.txt")
    m.succeed("rm -rf /run/vmlab/coverage/go && ln -s ` + victim + ` /run/vmlab/coverage/go")
    m.shutdown()
    m.start()
    m.succeed("true")
`
	if err := os.WriteFile(file, []byte(star), 0o644); err != nil {
		t.Fatal(err)
	}
	cov := filepath.Join(dir, "cov")
	code, stdout, stderr := run("run", "-coverage", cov, "-out", filepath.Join(dir, "out"), file)
	md := coverage.MachineDir(cov, "links.test_links", "m")
	if want := "m: the coverage directory " + filepath.Join(md, coverage.GuestDir, coverage.GoDir) + " is no longer a directory"; code != exitFail || !strings.Contains(stdout+stderr, want) {
		t.Errorf("got exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
	if fi, err := os.Stat(victim); err != nil || fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("the host directory behind go/: %v, %v; want mode 0700 as it was", fi.Mode(), err)
	}
	b, _ := os.ReadFile(filepath.Join(md, coverage.StateFile))
	st := readState(t, filepath.Join(md, coverage.StateFile))
	if strings.Contains(string(b), "HOSTSECRET") || !strings.Contains(st.Excluded, "go, which is not a regular file or directory") {
		t.Errorf("got state %s, want no host secret in it and the data excluded for the link go", b)
	}
	if want := "not merged: m in test links.test_links: the share held go,"; !strings.Contains(stderr, want) {
		t.Errorf("the merge does not name m's data as not merged\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}
