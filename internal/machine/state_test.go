package machine

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

// stateConfigs are the configs of a test file's machines.
func stateConfigs(names ...string) []Config {
	cfgs := make([]Config, len(names))
	for i, n := range names {
		cfgs[i] = Config{Machine: spec.New(n)}
	}
	return cfgs
}

// needE2fsprogs skips a test on a host without e2fsprogs.
func needE2fsprogs(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mke2fs", "e2fsck", "resize2fs"} {
		if _, err := findE2fsprogs(tool); err != nil {
			t.Skip(err)
		}
	}
}

// TestStateDir uses a state directory as two runs of one file would: the
// first records the file and its machines, the second gets the same
// images; each refusal comes before anything would boot, names what to do,
// and leaves the directory as it was.
func TestStateDir(t *testing.T) {
	needE2fsprogs(t)
	dir := filepath.Join(t.TempDir(), "state")
	file := filepath.Join(t.TempDir(), "web.star")

	cfgs := stateConfigs("server", "client")
	s, err := ApplyState(cfgs, dir, file)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		if want := filepath.Join(dir, c.Name+".img"); c.DiskImage != want {
			t.Errorf("machine %s: got image %q, want %q", c.Name, c.DiskImage, want)
		}
	}
	// The first boot makes the image; here the test does.
	if err := MakeDiskImage(cfgs[0].DiskImage, spec.DefaultDiskMiB); err != nil {
		t.Fatal(err)
	}
	var meta stateMeta
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err == nil {
		err = json.Unmarshal(b, &meta)
	}
	if err != nil || meta.Format != StateFormat || meta.File != file || !slices.Equal(meta.Machines, []string{"client", "server"}) {
		t.Errorf("metadata: got %+v (%v), want format %d, file %s, machines client and server", meta, err, StateFormat, file)
	}

	t.Run("in use", func(t *testing.T) {
		_, err := ApplyState(stateConfigs("server"), dir, file)
		wantError(t, err, "another vmlab is using it")
	})
	s.Close()
	s.Close() // idempotent

	t.Run("same file again", func(t *testing.T) {
		again := stateConfigs("server")
		s, err := ApplyState(again, dir, file)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if again[0].DiskImage != cfgs[0].DiskImage {
			t.Errorf("got image %q, want the first run's %q", again[0].DiskImage, cfgs[0].DiskImage)
		}
	})
	t.Run("another file", func(t *testing.T) {
		other := filepath.Join(filepath.Dir(file), "db.star")
		_, err := ApplyState(stateConfigs("server"), dir, other)
		wantError(t, err, "holds the machines of "+file+", not of "+other+": use another directory")
	})
	t.Run("another format", func(t *testing.T) {
		old := meta
		old.Format, old.VMLab = StateFormat+1, "v9.9.9"
		b, _ := json.Marshal(old)
		dir2 := t.TempDir()
		os.WriteFile(filepath.Join(dir2, stateFile), b, 0o600)
		_, err := ApplyState(stateConfigs("server"), dir2, file)
		wantError(t, err, "has format 2 (made by vmlab v9.9.9)")
	})
	t.Run("not vmlab's", func(t *testing.T) {
		dir2 := t.TempDir()
		os.WriteFile(filepath.Join(dir2, "server.img"), []byte("precious"), 0o600)
		_, err := ApplyState(stateConfigs("server"), dir2, file)
		wantError(t, err, "holds disk images but no vmlab-state.json")
		if b, _ := os.ReadFile(filepath.Join(dir2, "server.img")); string(b) != "precious" {
			t.Errorf("the user's file changed: %q", b)
		}
	})
}

// TestStateImages checks kept images before a boot: a damaged one is
// refused (and left alone), one bigger than disk_size is refused, a smaller
// one grows (how a full disk gets room), one whose journal needs replaying
// (its machine was killed) is accepted for the guest's kernel to replay.
func TestStateImages(t *testing.T) {
	needE2fsprogs(t)
	file := filepath.Join(t.TempDir(), "web.star")
	newState := func(t *testing.T, sizeMiB int) (dir, img string) {
		dir = t.TempDir()
		img = filepath.Join(dir, "server.img")
		s, err := ApplyState(stateConfigs("server"), dir, file)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := MakeDiskImage(img, sizeMiB); err != nil {
			t.Fatal(err)
		}
		return dir, img
	}
	apply := func(dir string, sizeMiB int) error {
		cfgs := stateConfigs("server")
		cfgs[0].DiskMiB = sizeMiB
		s, err := ApplyState(cfgs, dir, file)
		if err == nil {
			s.Close()
		}
		return err
	}
	t.Run("damaged", func(t *testing.T) {
		dir, img := newState(t, 64)
		f, _ := os.OpenFile(img, os.O_WRONLY, 0)
		f.WriteAt(make([]byte, 1024), 1024) // the superblock
		f.Close()
		err := apply(dir, 64)
		wantError(t, err, "state image "+img+" is damaged (e2fsck -n -f: exit status 4: ext2fs_open2: Bad magic number in super-block; ")
		wantError(t, err, "repair it with e2fsck -f "+img+", or delete it")
		if fi, _ := os.Stat(img); fi == nil || fi.Size() != 64<<20 {
			t.Errorf("the damaged image was changed or removed: %v", fi)
		}
	})
	t.Run("bigger than disk_size", func(t *testing.T) {
		dir, _ := newState(t, 64)
		wantError(t, apply(dir, 32), "is 64 MiB, more than the machine's disk_size of 32 MiB")
	})
	t.Run("grows to disk_size", func(t *testing.T) {
		dir, img := newState(t, 32)
		if err := apply(dir, 64); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(img); fi == nil || fi.Size() != 64<<20 {
			t.Errorf("got %v, want a 64 MiB image", fi)
		}
		if _, err := checkFS(img); err != nil {
			t.Errorf("the grown image: %v", err)
		}
	})
	t.Run("full", func(t *testing.T) {
		// mke2fs -d fills a 16 MiB image with 14,000 KiB of a file,
		// leaving 59 KiB, as a guest that filled its disk would.
		dir, img := newState(t, 16)
		os.Remove(img)
		src := t.TempDir()
		fill := make([]byte, 14000<<10)
		rand.Read(fill) // zeros would become a hole
		os.WriteFile(filepath.Join(src, "fill"), fill, 0o600)
		os.WriteFile(img, nil, 0o600)
		os.Truncate(img, 16<<20)
		mke2fs, _ := findE2fsprogs("mke2fs")
		if out, err := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-m", "0", "-d", src, img).CombinedOutput(); err != nil {
			t.Fatalf("mke2fs -d: %v: %s", err, out)
		}
		err := apply(dir, 16)
		wantError(t, err, "state image "+img+" is full (")
		wantError(t, err, "KiB free): the machine could not boot from it: raise its disk_size above 16 MiB")
		if err := apply(dir, 32); err != nil {
			t.Errorf("with a bigger disk_size: %v, want the image grown", err)
		}
	})
	t.Run("journal to replay", func(t *testing.T) {
		dir, img := newState(t, 64)
		// Set needs_recovery as a killed guest leaves it, and spoil the
		// free-block count, which only the replay would put right.
		f, _ := os.OpenFile(img, os.O_RDWR, 0)
		sb := make([]byte, 1024)
		f.ReadAt(sb, 1024)
		sb[0x60] |= 0x4
		sb[0x0c] ^= 0xff
		f.WriteAt(sb, 1024)
		f.Close()
		if !needsRecovery(img) {
			t.Fatal("needsRecovery does not see the flag")
		}
		if err := apply(dir, 64); err != nil {
			t.Errorf("got %v, want the image accepted for the guest to replay", err)
		}
	})
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %v, want one containing %q", err, want)
	}
}
