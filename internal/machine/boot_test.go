package machine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
)

// TestPrepareBootErrors checks that what is missing is named before any VM
// starts.
func TestPrepareBootErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "agent.sh")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	fakeKernel := filepath.Join(dir, "vmlinuz-9.9.9")
	os.WriteFile(fakeKernel, []byte("not a kernel"), 0o644)
	tests := []struct {
		name string
		opts machine.BootOptions
		want []string
	}{
		{"missing qemu", machine.BootOptions{QEMU: "/nonexistent/qemu"}, []string{"qemu", "/nonexistent/qemu"}},
		{"missing kernel", machine.BootOptions{Kernel: "/nonexistent/vmlinuz"}, []string{"/nonexistent/vmlinuz"}},
		{"not a kernel", machine.BootOptions{Kernel: fakeKernel, Modules: dir}, []string{fakeKernel}},
		{"bad accelerator", machine.BootOptions{Accel: "hvf", Agent: notELF}, []string{"hvf"}},
		{"bad file system", machine.BootOptions{FS: "nfs", Agent: notELF}, []string{"nfs", "9p or virtiofs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.QEMU == "" {
				tt.opts.QEMU = "/bin/true" // stands in for QEMU: it exists
			}
			tt.opts.CacheDir = t.TempDir()
			_, err := machine.PrepareBoot(tt.opts)
			if err == nil {
				t.Fatal("got nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
