package control

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// procUmask reads the process's umask without changing it.
func procUmask(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return ""
}

// TestListenKeepsUmask: serving a lab never changes the process's umask,
// which is shared by every goroutine: vmlab run serves each test's lab
// while the others create their output directories (before: Listen set
// it to 0177 around the socket's creation, and a directory made at that
// moment was born 0600).
func TestListenKeepsUmask(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	want := procUmask(t)
	var stop atomic.Bool
	var seen sync.Map
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			seen.Store(procUmask(t), true)
		}
	})
	for i := range 200 {
		s, err := Listen(fmt.Sprintf("lab%d", i), LabInfo{}, newFakeLab(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	stop.Store(true)
	wg.Wait()
	seen.Range(func(k, _ any) bool {
		if k.(string) != want {
			t.Errorf("the umask was %s while labs were served, want %s throughout", k, want)
		}
		return true
	})
}
