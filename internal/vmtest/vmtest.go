// Package vmtest prepares what tests that boot real VMs need: a static vmlab
// binary for the guest agent, and the boot configuration. Tests call Boot;
// without QEMU or a kernel they are skipped locally and fail under CI
// ($CI set), where the install step must have provided them.
package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
)

var (
	once    sync.Once
	boot    *machine.Boot
	bootErr error
	binDir  string
)

// Agent builds cmd/vmlab statically, once per test binary, and returns its
// path.
func Agent(t testing.TB) string {
	t.Helper()
	Boot(t)
	return filepath.Join(binDir, "vmlab")
}

// Boot returns the shared boot configuration, building the agent on first use.
// Under -short it skips the test: -short runs the VM-free tests only (in
// seconds), the whole suite boots VMs (minutes under TCG).
func Boot(t testing.TB) *machine.Boot {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs (-short runs the VM-free tests only)")
	}
	once.Do(func() {
		var bin string
		if bin, bootErr = buildAgent(); bootErr == nil {
			boot, bootErr = machine.PrepareBoot(machine.BootOptions{Agent: bin})
		}
	})
	if bootErr != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("cannot boot VMs here: %v", bootErr)
		}
		t.Fatalf("cannot boot VMs: %v", bootErr)
	}
	return boot
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// buildAgent builds cmd/vmlab statically, once.
func buildAgent() (string, error) {
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "vmlab-test-bin-"); buildErr != nil {
			return
		}
		bin := filepath.Join(binDir, "vmlab")
		// Stripped (-s -w): a smaller /init is a faster initramfs to unpack.
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "github.com/vmlab/vmlab/cmd/vmlab")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{string(out), err}
			return
		}
		built = bin
	})
	return built, buildErr
}

// Main is a TestMain for internal packages whose tests boot machines or run
// the CLI: it builds the agent and points VMLAB_AGENT at it (a test binary
// is dynamically linked, the guest needs a static init), runs the tests and
// cleans up. Tests of the public API need none: vmlab.New builds the agent
// itself.
func Main(m *testing.M) {
	if bin, err := buildAgent(); err == nil {
		os.Setenv("VMLAB_AGENT", bin)
	} else {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		if os.Getenv("CI") != "" {
			os.Exit(1)
		}
	}
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "build the agent: " + e.err.Error() + "\n" + e.out }

// Machine returns a new machine that is closed when the test ends.
func Machine(t testing.TB, cfg machine.Config) *machine.Machine {
	t.Helper()
	cfg.Boot = Boot(t)
	if cfg.Name == "" {
		cfg.Name = "machine"
	}
	cfg.Logf = t.Logf
	m, err := machine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Cleanup removes the agent build. Call it from TestMain after m.Run.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// ForkServerBash is a command that says which bash the guest agent's fork
// server runs: "copy", the initramfs's copy of the host's, started before
// the root was up (internal/agent/forksrv_early.go), or "root", the root's
// /bin/bash itself (the same device and inode).
// Bash alone: an image may have no pgrep or stat.
const ForkServerBash = `for c in /proc/[0-9]*/comm; do { read -r n < "$c"; } 2>/dev/null || continue; [ "$n" != vmlab-forksrv ] || p=${c%/comm}; done; if [ "$p/exe" -ef /bin/bash ]; then echo root; else echo copy; fi`
