package vmlab

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/vmlab/vmlab/internal/cachefile"
	"github.com/vmlab/vmlab/internal/machine"
)

// modulePath is vmlab's module; agentPackage is the guest's init alone (the
// agent without the CLI), which builds with the go.sum of any module that
// requires vmlab.
const (
	modulePath   = "github.com/vmlab/vmlab"
	agentPackage = modulePath + "/internal/agent/guestinit"
)

// agentSource says where the guest's init comes from.
type agentSource struct {
	self     string           // this program
	info     *debug.BuildInfo // this program's build info; nil: unknown
	cacheDir string           // where a release's agent is kept
	goBin    string           // the go command; empty: look it up on PATH
}

// guestAgent returns the static program the guest runs as its init: ""
// when $VMLAB_AGENT names one or this program is static (PrepareBoot then
// finds it), else a build of agentPackage. The guest runs its init before
// any host library is mounted, so it must be static; a test binary is not
// when cgo is on (the default where a C compiler is installed).
//
// A release of vmlab (a version from the module proxy, whose go.sum hash
// fixes its content) is built once and kept in the cache as
// agent-<version>-<go version>. A local checkout (vmlab's own tests, a
// replace directive) is built into a temporary directory each time: its
// content can change under the same version. Go's build cache makes that
// build a link, ~0.6 s. done removes what was built; the initramfs holds a
// copy, so the caller calls it once the boot is prepared.
func (s agentSource) guestAgent() (path string, done func(), err error) {
	done = func() {}
	if os.Getenv("VMLAB_AGENT") != "" || isStatic(s.self) {
		return "", done, nil
	}
	if v := releaseOf(s.info); v != "" {
		path = filepath.Join(s.cacheDir, "agent-"+v+"-"+s.info.GoVersion)
		err = cachefile.Use(path, func(w io.Writer) error { return s.buildInto(w) })
		if err != nil {
			return "", done, err
		}
		return path, done, nil
	}
	dir, err := os.MkdirTemp("", "vmlab-agent-")
	if err != nil {
		return "", done, fmt.Errorf("build the guest agent: %w", err)
	}
	path = filepath.Join(dir, "agent")
	if err := s.build(path); err != nil {
		os.RemoveAll(dir)
		return "", done, err
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// build builds agentPackage statically into path with the go command, in
// the working directory: `go test` runs a test in its package's directory,
// in the module that requires vmlab, so the build uses that module's
// version of vmlab.
func (s agentSource) build(path string) error {
	goBin := s.goBin
	if goBin == "" {
		var err error
		// `go test` puts its own go first on PATH (Go 1.19 and later).
		if goBin, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("build the guest agent: this test binary is dynamically linked (cgo), the guest needs a static init, "+
				"and building one needs the go command, not found on PATH; set VMLAB_AGENT to a static build (%s): %w", buildHint, err)
		}
	}
	// Stripped (-s -w): a smaller /init is a faster initramfs to unpack.
	cmd := exec.Command(goBin, "build", "-ldflags=-s -w", "-o", path, agentPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the guest agent (%s), needed because this test binary is dynamically linked (cgo): %w\n%s"+
			"set VMLAB_AGENT to a static build instead (%s)", strings.Join(cmd.Args, " "), err, out, buildHint)
	}
	return nil
}

// buildHint is how a user builds the agent by hand, from their module.
const buildHint = "CGO_ENABLED=0 go build -o vmlab-agent " + agentPackage

// buildInto builds the agent and copies it to w.
func (s agentSource) buildInto(w io.Writer) error {
	dir, err := os.MkdirTemp("", "vmlab-agent-")
	if err != nil {
		return fmt.Errorf("build the guest agent: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "agent")
	if err := s.build(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// releaseOf returns the version of vmlab this program was built with when
// it is a release whose content the version fixes (a module sum and no
// replace), else "".
func releaseOf(bi *debug.BuildInfo) string {
	if bi == nil {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath && d.Replace == nil && d.Sum != "" && d.Version != "" && d.Version != "(devel)" {
			return d.Version
		}
	}
	return ""
}

// isStatic reports whether path is an ELF executable without an
// interpreter (a dynamically linked one names ld.so in PT_INTERP).
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// thisAgentSource describes this program.
func thisAgentSource(cacheDir string) (agentSource, error) {
	self, err := os.Executable()
	if err != nil {
		return agentSource{}, fmt.Errorf("find this program: %w", err)
	}
	bi, _ := debug.ReadBuildInfo()
	return agentSource{self: self, info: bi, cacheDir: cacheDir}, nil
}

// prepareBoot prepares what every machine of this test binary boots, with a
// static agent found or built.
func prepareBoot() (*machine.Boot, error) {
	cache, err := machine.CacheDir("")
	if err != nil {
		return nil, err
	}
	src, err := thisAgentSource(cache)
	if err != nil {
		return nil, err
	}
	agent, done, err := src.guestAgent()
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := machine.PrepareBoot(machine.BootOptions{Agent: agent})
	if err != nil {
		return nil, err
	}
	// done removes an agent built into a temporary directory, which the
	// initramfs of machines with a display, built at the first one's boot,
	// would then not find ("read init binary: ... no such file"): build it
	// now, while the agent exists: a cache hit after the first time, 26 ms.
	if _, err := b.InitramfsFor(true); err != nil {
		return nil, err
	}
	return b, nil
}
