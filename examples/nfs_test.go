package examples

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNFS runs the seeds' NFS test (nfs.star) with `vmlab run` and checks
// its reports: every step ran and passed, and the server's journal reached
// them. rpc.mountd's "Version ... starting" goes to syslog, so only the
// journal (forwarded to the console) puts it there; systemd's own lines
// may come through the kernel's log instead.
func TestNFS(t *testing.T) {
	bootsVMs(t)
	out := t.TempDir()
	start := time.Now()
	if b, err := vmlabRun(t, out, "nfs.star"); err != nil {
		t.Fatalf("vmlab run nfs.star: %v\n%s", err, b)
	}
	t.Logf("vmlab run nfs.star: %.1f s", time.Since(start).Seconds())

	events := readEvents(t, filepath.Join(out, "events.jsonl"))
	var passed []string
	journal := false
	for _, e := range events {
		switch e.Kind {
		case "subtest-end":
			if e.Passed {
				passed = append(passed, strings.Join(e.Path, "/"))
			}
		case "console":
			journal = journal || e.Machine == "server" && strings.Contains(e.Text, "rpc.mountd[") && strings.Contains(e.Text, "starting")
		}
	}
	want := []string{
		"the clients share files",
		"client2 cannot get a lock client1 holds",
		"client1's shutdown releases its lock",
		"locks survive a server crash",
		"a crashed client's lock ends with its lease",
	}
	if !slices.Equal(passed, want) {
		t.Errorf("got passed subtests %q, want %q", passed, want)
	}
	if !journal {
		t.Errorf("no console line of the server has rpc.mountd starting; want the server's journal in the reports")
	}
}

// event is the part of an events.jsonl line these tests read.
type event struct {
	Kind    string   `json:"kind"`
	Machine string   `json:"machine"`
	Text    string   `json:"text"`
	Path    []string `json:"path"`
	Passed  bool     `json:"passed"`
}

func readEvents(t *testing.T, path string) []event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}
