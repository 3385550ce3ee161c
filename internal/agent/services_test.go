package agent

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// runServices starts specs with a notify that records each notice, waits
// until every service has exited for good (each supervisor returned, so
// each notice is in), and returns the notices in order.
func runServices(t *testing.T, specs []agentproto.Service) []agentproto.ServiceExit {
	t.Helper()
	var mu sync.Mutex
	var got []agentproto.ServiceExit
	sv := services{notify: func(e agentproto.ServiceExit) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}}
	if err := sv.start(t.Context(), specs); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		sv.wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		sv.stop(time.Second)
		t.Fatal("the services did not end on their own in 20 s")
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(got)
}

// TestServiceFinalExitTold: the exit after which a service stays down is
// told to the host even when the crash-loop throttle would skip its
// number: here the 5th exit, after four failures under "on-failure".
func TestServiceFinalExitTold(t *testing.T) {
	dir := t.TempDir()
	count := "n=$(cat " + dir + "/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + dir + "/n; "
	got := runServices(t, []agentproto.Service{
		{Name: "s", Command: count + "[ $n -ge 5 ] && exit 0; exit 1", Restart: "on-failure"},
	})
	var lines []string
	for _, e := range got {
		lines = append(lines, e.String())
	}
	want := []string{
		"service s exited with status 1; restarting",
		"service s exited with status 1 (exit 2 since boot); restarting",
		"service s exited with status 1 (exit 3 since boot); restarting",
		"service s exited with status 1 (exit 4 since boot); restarting",
		"service s exited with status 0 (exit 5 since boot)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("got notices\n%q\nwant\n%q", lines, want)
	}
}

// TestServiceExitTailIsTheRun: a notice's Tail holds its own run's lines,
// not those of the runs before it.
func TestServiceExitTailIsTheRun(t *testing.T) {
	dir := t.TempDir()
	count := "n=$(cat " + dir + "/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + dir + "/n; "
	got := runServices(t, []agentproto.Service{
		{Name: "s", Command: count + "echo run $n; [ $n -ge 3 ] && exit 0; exit 1", Restart: "on-failure"},
	})
	want := [][]string{{"run 1"}, {"run 2"}, {"run 3"}}
	if len(got) != len(want) {
		t.Fatalf("got %d notices %v, want %d", len(got), got, len(want))
	}
	for i, e := range got {
		if !slices.Equal(e.Tail, want[i]) {
			t.Errorf("notice %d: got tail %q, want %q", i+1, e.Tail, want[i])
		}
	}
}
