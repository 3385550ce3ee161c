// Package forksrv builds, on the host, the bash loadable builtin the guest
// agent's fork server loads (src/forksrv.c; docs/architecture.md
// "Commands"). The C source is compiled with the host's cc into the cache,
// keyed by the source's hash, and goes into the initramfs as /forksrv.so
// (initramfs.Spec.ForkServer).
package forksrv

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// Source is the builtin's C source.
//
//go:embed src/forksrv.c
var Source []byte

// GuestPath is where the initramfs holds the built library; the agent reads
// it from there before it switches to the guest's root.
const GuestPath = "/forksrv.so"

// ShellManifest is where the initramfs says which of the host's shells it
// holds a copy of, with its loader, libraries and C.UTF-8 locale at their
// host paths (initramfs.Spec.Shell): one line, "PATH SIZE MTIME", the
// host file's size and modification time in nanoseconds. The agent starts
// its fork server from that copy before the guest's root exists, and keeps
// it once the root's PATH is the same file (docs/snapshots.md).
const ShellManifest = "/forksrv.shell"

// flags are cc's: -z now binds every symbol at load, so a bash that lacks
// one refuses `enable -f` instead of failing in the middle of a command.
var flags = []string{"-shared", "-fPIC", "-O2", "-Wall", "-Wl,-z,now"}

// Build compiles Source into cacheDir unless it is there already, and
// returns the library's path. It fails when the library is not cached and
// the host has no C compiler. The compiler works in a directory of the
// system's temporary directory, removed after it, so a vmlab killed in the
// middle leaves nothing in the cache (where `vmlab cache` would not see it).
func Build(cacheDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "forksrv %q\n", flags)
	h.Write(Source)
	path := filepath.Join(cacheDir, "forksrv-"+hex.EncodeToString(h.Sum(nil))[:32]+".so")
	err := cachefile.Use(path, func(w io.Writer) error {
		cc, err := exec.LookPath("cc")
		if err != nil {
			return errNoCC
		}
		dir, err := os.MkdirTemp("", "vmlab-forksrv-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "forksrv.so")
		cmd := exec.Command(cc, append(append([]string{}, flags...), "-o", out, "-x", "c", "-")...)
		cmd.Stdin = bytes.NewReader(Source)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", cc, err, msg)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if errors.Is(err, errNoCC) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("build the fork server's bash builtin %s: %w", path, err)
	}
	return path, nil
}

var errNoCC = errors.New("build the fork server's bash builtin: no C compiler (cc) on the host: install gcc (scripts/deps)")
