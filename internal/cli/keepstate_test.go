package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// keepStateFile counts its runs in /root, which only a kept disk carries
// from one run to the next.
const keepStateFile = `server = machine(disk_size = 64)

def test():
    n = int(server.succeed("cat /root/runs 2>/dev/null || echo 0").strip()) + 1
    server.succeed("echo %d > /root/runs" % n)
    print("run number", n, "id=" + server.succeed("cat /etc/machine-id").strip())
`

// TestRunKeepState runs a file twice with --keep-state: the second run
// sees the first one's file. A state directory of another file, and two
// files at once, are refused before anything boots, and the directory is
// left as it was.
func TestRunKeepState(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	dir := t.TempDir()
	file := filepath.Join(dir, "count.star")
	if err := os.WriteFile(file, []byte(keepStateFile), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	var ids []string
	for n := 1; n <= 2; n++ {
		code, stdout, stderr := run("run", "-v", "--keep-state", state, file)
		if want := "run number " + string(rune('0'+n)); code != exitOK || !strings.Contains(stdout, want) {
			t.Fatalf("run %d: got exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", n, code, want, stdout, stderr)
		}
		_, id, _ := strings.Cut(stdout, "id=")
		id, _, _ = strings.Cut(id, "\n")
		ids = append(ids, strings.TrimSpace(id))
	}
	// As root the guest gets a machine-id of its own (package hostview),
	// kept beside its disk: the same machine in both runs.
	if os.Geteuid() == 0 && (ids[0] == "" || ids[0] != ids[1]) {
		t.Errorf("machine-id: got %q then %q, want the same in both runs", ids[0], ids[1])
	}
	if _, err := os.Stat(filepath.Join(state, "server.img")); err != nil {
		t.Errorf("the state directory lacks the machine's image: %v", err)
	}

	other := filepath.Join(dir, "other.star")
	os.WriteFile(other, []byte(keepStateFile), 0o644)
	for _, tt := range []struct {
		name  string
		files []string
		want  string
	}{
		{"another file", []string{other}, "holds the machines of " + file + ", not of " + other},
		{"two files", []string{file, other}, "holds the machines of one test file; 2 files given"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(append([]string{"run", "--keep-state", state}, tt.files...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "kernel") {
				t.Errorf("got exit %d, stderr:\n%s\nwant 2 and %q, before the boot is prepared", code, stderr, tt.want)
			}
		})
	}
}
