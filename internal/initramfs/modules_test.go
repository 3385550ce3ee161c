package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testModulesDep mirrors the shape of Debian 6.1's modules.dep: every
// module's full dependency list, in the order depmod writes it.
const testModulesDep = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/broken.ko: kernel/drivers/missing.ko
kernel/drivers/corrupt.ko.zst:
`

const testBuiltin = `kernel/fs/fuse/fuse.ko
kernel/drivers/block/virtio_blk.ko
`

// writeTree writes a module tree with modules.dep, modules.builtin and the
// given files (paths relative to the tree).
func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	files["modules.dep"] = []byte(testModulesDep)
	files["modules.builtin"] = []byte(testBuiltin)
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestClosure(t *testing.T) {
	dir := writeTree(t, map[string][]byte{})
	tests := []struct {
		name    string
		modules []string
		want    []string // module names in load order
		wantErr []string // substrings of the error
	}{
		{name: "dependencies first, in modprobe's order", modules: []string{"virtio_pci"},
			want: []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"}},
		{name: "shared dependencies once", modules: []string{"9p", "9pnet_virtio"},
			want: []string{"netfs", "fscache", "9pnet", "9p", "virtio_ring", "virtio", "9pnet_virtio"}},
		{name: "dash and underscore match", modules: []string{"virtio-rng", "virtio_ring"},
			want: []string{"virtio_ring", "virtio", "virtio_rng"}},
		{name: "repeated names once", modules: []string{"virtio", "virtio_ring", "virtio"},
			want: []string{"virtio_ring", "virtio"}},
		{name: "built-in modules skipped", modules: []string{"virtio_blk", "overlay", "fuse"},
			want: []string{"overlay"}},
		{name: "nothing asked", modules: nil, want: nil},
		{name: "unknown module", modules: []string{"overlay", "no-such"},
			wantErr: []string{`"no_such"`, filepath.Join(dir, "modules.dep"), "modules.builtin"}},
		{name: "dependency missing from modules.dep", modules: []string{"broken"},
			wantErr: []string{`"broken"`, `"missing"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mods, err := Closure(dir, tt.modules)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got modules %v, want an error", mods)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestModuleFileName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/lib/modules/x/kernel/fs/9p/9p.ko", "9p.ko"},
		{"/lib/modules/x/kernel/drivers/char/hw_random/virtio-rng.ko.xz", "virtio-rng.ko"},
		{"/lib/modules/x/kernel/fs/overlayfs/overlay.ko.zst", "overlay.ko"},
		{"/lib/modules/x/kernel/fs/fuse/virtiofs.ko.gz", "virtiofs.ko"},
	}
	for _, tt := range tests {
		if got := (Module{Path: tt.path}).FileName(); got != tt.want {
			t.Errorf("FileName of %s = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestStripSignature(t *testing.T) {
	elf := []byte("\x7fELF module body")
	sig := bytes.Repeat([]byte{0x5A}, 7)
	info := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(sig))}
	signed := append(append(append(append([]byte{}, elf...), sig...), info...), sigMarker...)
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"signed", signed, elf},
		{"unsigned", elf, elf},
		{"length past the start", append(append([]byte("\x7fELF"), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99), sigMarker...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.in
			}
			if got := stripSignature(tt.in); !bytes.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
