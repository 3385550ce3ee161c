package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestRunCached boots VMs: a passing test is cached by its second run and
// reported so in every report; -count=1 and an edit of its file run it
// again; a failing test runs every time; a second runner (another local
// store) gets the pass from the shared server. (internal/resultcache tests
// the server protocol against a real nginx.)
func TestRunCached(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	t.Setenv(resultCacheEnv, t.TempDir()) // an empty store of the test's own
	var shared sync.Map                   // a GET/PUT server's entries, by path
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			shared.Store(r.URL.Path, b)
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			if b, ok := shared.Load(r.URL.Path); ok {
				w.Write(b.([]byte))
				return
			}
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass.star")
	fail := filepath.Join(dir, "fail.star")
	for src, dst := range map[string]string{"testdata/pass.star": pass, "testdata/fail.star": fail} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dst, b, 0o644)
	}
	const cachedLine = "PASS pass.test_hostname (cached, "
	runOnce := func(wantCode int, args ...string) (stdout, out string) {
		t.Helper()
		out = t.TempDir()
		code, stdout, stderr := run(append([]string{"run", "-cache=on", "-cache-url", srv.URL, "-out", out}, args...)...)
		if code != wantCode {
			t.Fatalf("run %q: got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, stdout, stderr)
		}
		return stdout, out
	}
	stdout, _ := runOnce(exitOK, pass)
	if strings.Contains(stdout, "cached") {
		t.Fatalf("first run: reported cached:\n%s", stdout)
	}
	start := time.Now()
	stdout, out := runOnce(exitOK, pass)
	took := time.Since(start)
	if !strings.Contains(stdout, cachedLine) || strings.Contains(stdout, "RUN  pass.test_hostname") {
		t.Errorf("second run: want %q and no RUN line:\n%s", cachedLine, stdout)
	}
	t.Logf("a cached run took %v", took)
	for file, want := range map[string]string{"events.jsonl": `"cached":true`, "junit.xml": "cached: not run, passed ", "report.html": "(cached)"} {
		b, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("second run's %s: want %q (err %v)", file, want, err)
		}
	}
	if stdout, _ := runOnce(exitOK, "-count=1", pass); strings.Contains(stdout, "cached") {
		t.Errorf("-count=1: reported cached, want it run:\n%s", stdout)
	}
	if stdout, _ := runOnce(exitOK, "-cache=off", pass); strings.Contains(stdout, "cached") {
		t.Errorf("-cache=off: reported cached, want it run:\n%s", stdout)
	}
	b, _ := os.ReadFile(pass)
	os.WriteFile(pass, append(b, "# edited\n"...), 0o644)
	if stdout, _ := runOnce(exitOK, pass); strings.Contains(stdout, "cached") {
		t.Errorf("after an edit of the file: reported cached, want it run:\n%s", stdout)
	}
	t.Setenv(resultCacheEnv, t.TempDir()) // another runner
	if stdout, _ := runOnce(exitOK, pass); !strings.Contains(stdout, cachedLine) {
		t.Errorf("a second runner with the shared server: want %q:\n%s", cachedLine, stdout)
	}
	for i := range 2 {
		if stdout, _ := runOnce(exitFail, fail); strings.Contains(stdout, "cached") || !strings.Contains(stdout, "FAIL fail.test_fails") {
			t.Errorf("failing test, run %d: want it run and failed:\n%s", i+1, stdout)
		}
	}
}
