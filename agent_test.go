package vmlab

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestGuestAgent: a dynamically linked test binary gets a static agent
// built for it, without VMLAB_AGENT or CGO_ENABLED=0; a release's is kept
// in the cache and reused without the go command.
func TestGuestAgent(t *testing.T) {
	t.Setenv("VMLAB_AGENT", "")
	dynamic := "/bin/sh" // Debian's dash names ld.so as its interpreter
	if isStatic(dynamic) {
		t.Skipf("%s is static here; the test needs a dynamically linked program", dynamic)
	}
	release := &debug.BuildInfo{GoVersion: "go1.26.8", Deps: []*debug.Module{{Path: modulePath, Version: "v1.2.3", Sum: "h1:x="}}}
	local := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: modulePath, Version: "(devel)"}}

	t.Run("local checkout", func(t *testing.T) {
		path, done, err := agentSource{self: dynamic, info: local, cacheDir: t.TempDir()}.guestAgent()
		if err != nil {
			t.Fatal(err)
		}
		if !isStatic(path) {
			t.Errorf("got %q, want a static executable", path)
		}
		done()
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("after done, %s: got %v, want it removed", path, err)
		}
	})
	t.Run("release, cached", func(t *testing.T) {
		cache := t.TempDir()
		path, _, err := agentSource{self: dynamic, info: release, cacheDir: cache}.guestAgent()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(cache, "agent-v1.2.3-go1.26.8"); path != want || !isStatic(path) {
			t.Fatalf("got %q (static %v), want the static %q", path, isStatic(path), want)
		}
		// The second time needs no go command: the cache has it.
		again, _, err := agentSource{self: dynamic, info: release, cacheDir: cache, goBin: "/no/such/go"}.guestAgent()
		if err != nil || again != path {
			t.Errorf("second time: got %q, %v; want %q from the cache", again, err, path)
		}
	})
	t.Run("static self", func(t *testing.T) {
		static, done, err := agentSource{self: dynamic, info: local}.guestAgent()
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		if path, _, err := (agentSource{self: static, info: local}).guestAgent(); path != "" || err != nil {
			t.Errorf("got %q, %v; want \"\" (PrepareBoot takes this program)", path, err)
		}
	})
	t.Run("VMLAB_AGENT", func(t *testing.T) {
		t.Setenv("VMLAB_AGENT", "/some/agent")
		if path, _, err := (agentSource{self: dynamic, info: local, goBin: "/no/such/go"}).guestAgent(); path != "" || err != nil {
			t.Errorf("got %q, %v; want \"\" (PrepareBoot takes $VMLAB_AGENT)", path, err)
		}
	})
	t.Run("no go command", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, _, err := agentSource{self: dynamic, info: local}.guestAgent()
		for _, want := range []string{"go command, not found on PATH", "set VMLAB_AGENT", agentPackage} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error saying %q", err, want)
			}
		}
	})
}

func TestReleaseOf(t *testing.T) {
	vmlab := func(version, sum string, replace *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Deps: []*debug.Module{{Path: "golang.org/x/sys", Version: "v0.49.0", Sum: "h1:y="},
			{Path: modulePath, Version: version, Sum: sum, Replace: replace}}}
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"release", vmlab("v1.2.3", "h1:x=", nil), "v1.2.3"},
		{"replaced by a directory", vmlab("v1.2.3", "", &debug.Module{Path: "../vmlab"}), ""},
		{"no sum", vmlab("v1.2.3", "", nil), ""},
		{"vmlab's own tests", &debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "(devel)"}}, ""},
		{"no build info", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := releaseOf(tt.info); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
