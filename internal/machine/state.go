package machine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/version"
)

// A state directory keeps the machines' disk images across runs (vmlab run
// --keep-state DIR, vmlab up --state DIR, vmlab.KeepState): DIR/NAME.img for
// each machine, and stateFile, which says whose images they are. Nothing in
// it is ever deleted by vmlab: a directory or an image that cannot be used
// is refused with what to do.

// stateFile is the state directory's metadata file.
const stateFile = "vmlab-state.json"

// StateFormat is the layout of the images (an ext4 whose root/ is the
// guest's root and overlay/ the overlays' writable layers, read by the
// agent) and of the directory. A directory of another format is refused:
// this vmlab would misread it.
const StateFormat = 1

// stateMeta is stateFile's content.
type stateMeta struct {
	Format int `json:"format"`
	// VMLab is the version of vmlab that made the directory (information).
	VMLab string `json:"vmlab"`
	// File is the absolute path of the test file whose machines these are.
	File string `json:"file"`
	// Machines are the machines that have an image, sorted.
	Machines []string `json:"machines"`
}

// State is a state directory in use: this process holds its lock until
// Close, so that a second lab (another vmlab up, a vmlab run) cannot boot
// the same images.
type State struct {
	Dir  string
	meta stateMeta
	lock *os.File
}

// ApplyState opens the state directory dir for the machines of the test
// file file (created when missing), checks it and each machine's image, and
// points each config at its image (Config.DiskImage). The caller closes the
// State when the machines are stopped. Every refusal (a directory of
// another file or format, one in use, a damaged image, one bigger than the
// machine's disk_size) names what to do, and comes before anything boots.
func ApplyState(cfgs []Config, dir, file string) (*State, error) {
	s, err := OpenState(dir, file)
	if err != nil {
		return nil, err
	}
	if err := s.Apply(cfgs); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenState opens (or creates) the state directory dir for the test file
// file and locks it.
func OpenState(dir, file string) (*State, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open state directory %s: another vmlab is using it (a lab that is up, or a run): stop it first, or use another directory", dir)
	}
	s := &State{Dir: dir, lock: lock}
	if err := s.readMeta(abs); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// readMeta reads stateFile and checks it is this file's and this format's;
// a directory without one must hold no images (it is new).
func (s *State) readMeta(file string) error {
	path := filepath.Join(s.Dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if imgs, _ := filepath.Glob(filepath.Join(s.Dir, "*.img")); len(imgs) > 0 {
			return fmt.Errorf("state directory %s holds disk images but no %s: it was not made by vmlab; use another directory", s.Dir, stateFile)
		}
		s.meta = stateMeta{Format: StateFormat, VMLab: version.Short(), File: file}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state directory: %w", err)
	}
	if err := json.Unmarshal(b, &s.meta); err != nil {
		return fmt.Errorf("state directory %s: %s is damaged (%v): use another directory, or delete %s to start afresh", s.Dir, stateFile, err, s.Dir)
	}
	return checkMeta(s.meta, s.Dir, file)
}

// checkMeta says why the directory described by m cannot hold file's
// machines.
func checkMeta(m stateMeta, dir, file string) error {
	switch {
	case m.Format != StateFormat:
		return fmt.Errorf("state directory %s has format %d (made by vmlab %s); this vmlab (%s) reads format %d: "+
			"use that vmlab, or another directory (delete %s to start afresh)", dir, m.Format, m.VMLab, version.Short(), StateFormat, dir)
	case m.File != file:
		return fmt.Errorf("state directory %s holds the machines of %s, not of %s: use another directory for this file", dir, m.File, file)
	}
	return nil
}

// Apply checks each machine's image in the directory (a new machine gets
// one at its first boot), points its config at it and records the
// machines in the metadata file.
func (s *State) Apply(cfgs []Config) error {
	var errs []error
	for i := range cfgs {
		img := s.Image(cfgs[i].Name)
		if err := checkImage(img, cfgs[i].WithDefaults().DiskMiB); err != nil {
			errs = append(errs, fmt.Errorf("machine %s: %w", cfgs[i].Name, err))
			continue
		}
		cfgs[i].DiskImage = img
		if !slices.Contains(s.meta.Machines, cfgs[i].Name) {
			s.meta.Machines = append(s.meta.Machines, cfgs[i].Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	slices.Sort(s.meta.Machines)
	b, _ := json.MarshalIndent(s.meta, "", "  ")
	tmp := filepath.Join(s.Dir, stateFile+".new")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state directory: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, stateFile)); err != nil {
		return fmt.Errorf("write state directory: %w", err)
	}
	return nil
}

// Image returns the path of the machine's image in the directory.
func (s *State) Image(name string) string { return filepath.Join(s.Dir, name+".img") }

// Close gives up the directory's lock. It is idempotent.
func (s *State) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// checkImage checks a kept image before a boot: e2fsck -n finds it sound
// (one that only needs its journal replayed, after a crash or a killed
// vmlab, is left to the guest's kernel), and it is no bigger than sizeMiB.
// A smaller one is grown to sizeMiB (resize2fs), which is how a full image
// gets room. A missing image is fine: the first boot makes it.
func checkImage(path string, sizeMiB int) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check state image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("state image %s is not a regular file: move it away", path)
	}
	recovering, err := checkFS(path)
	if err != nil {
		return err
	}
	want := int64(sizeMiB) << 20
	switch {
	case fi.Size() > want:
		return fmt.Errorf("state image %s is %d MiB, more than the machine's disk_size of %d MiB: vmlab does not shrink a disk: "+
			"set disk_size to %d, or delete the image to start from an empty disk", path, fi.Size()>>20, sizeMiB, fi.Size()>>20)
	case fi.Size() < want && recovering:
		return fmt.Errorf("state image %s cannot grow to %d MiB before its journal is replayed: boot it once with disk_size = %d", path, sizeMiB, fi.Size()>>20)
	case fi.Size() < want:
		return growImage(path, want)
	}
	if free, ok := freeBytes(path); ok && !recovering && free < minFreeBytes {
		return fmt.Errorf("state image %s is full (%d KiB free): the machine could not boot from it: "+
			"raise its disk_size above %d MiB and vmlab grows the image, or delete the image to start from an empty disk",
			path, free>>10, sizeMiB)
	}
	return nil
}

// minFreeBytes is the least free space a kept image must have to boot: init
// writes to it (the host name, mount points, the declared files) before
// the test can make room.
const minFreeBytes = 1 << 20

// freeBytes reads the free space an ext4 image's superblock records (exact
// after a clean shutdown, which kept images get).
func freeBytes(path string) (int64, bool) {
	sb, ok := readSuperblock(path)
	if !ok {
		return 0, false
	}
	free := uint64(le32(sb, 0x0c))
	if le32(sb, 0x60)&0x80 != 0 { // 64bit: the high half
		free |= uint64(le32(sb, 0x158)) << 32
	}
	return int64(free) << (10 + le32(sb, 0x18)), true
}

// checkFS runs e2fsck -n -f on the image: exit 0 is a sound file system.
// Otherwise an image whose journal needs replaying (its machine was killed)
// is sound as far as the host can tell, and the guest's kernel replays it;
// anything else is damage. It reports whether the journal needs replaying.
func checkFS(path string) (recovering bool, err error) {
	e2fsck, err := findE2fsprogs("e2fsck")
	if err != nil {
		return false, err
	}
	out, err := exec.Command(e2fsck, "-n", "-f", path).CombinedOutput()
	if err == nil {
		return false, nil
	}
	if needsRecovery(path) {
		return true, nil
	}
	return false, fmt.Errorf("state image %s is damaged (e2fsck -n -f: %v: %s): repair it with e2fsck -f %s, or delete it to start from an empty disk",
		path, err, e2fsckProblems(string(out), 2), path)
}

// needsRecovery reads the ext4 superblock's needs_recovery flag
// (incompat feature 0x4).
func needsRecovery(path string) bool {
	sb, ok := readSuperblock(path)
	return ok && le32(sb, 0x60)&0x4 != 0
}

// readSuperblock returns an ext2/3/4 image's superblock (1 KiB at offset
// 1024), if its magic is right.
func readSuperblock(path string) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return nil, false
	}
	return sb, binary.LittleEndian.Uint16(sb[0x38:]) == 0xEF53
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// growImage makes the image size bytes long and its file system fill it.
func growImage(path string, size int64) error {
	resize2fs, err := findE2fsprogs("resize2fs")
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("grow state image: %w", err)
	}
	if err := os.Truncate(path, size); err != nil {
		return fmt.Errorf("grow state image: %w", err)
	}
	// -f: e2fsck -f -n found it sound just now, which resize2fs would
	// otherwise ask for.
	if out, err := exec.Command(resize2fs, "-f", path).CombinedOutput(); err != nil {
		// Back to its size: a file already grown would pass for a grown
		// file system next time, and the disk would stay as small.
		os.Truncate(path, fi.Size())
		return fmt.Errorf("grow state image %s to %d MiB: resize2fs: %v: %s", path, size>>20, err, lastLines(string(out), 3))
	}
	return nil
}

// findE2fsprogs finds one of e2fsprogs' tools, in /sbin or /usr/sbin when
// PATH lacks them.
func findE2fsprogs(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err == nil {
			return filepath.Join(dir, tool), nil
		}
	}
	return "", fmt.Errorf("%s not found, which checks and makes the machines' disks (Debian/Ubuntu: apt-get install e2fsprogs)", tool)
}

// e2fsckProblems returns the first n lines of e2fsck's output that say
// what is wrong (not its banner, its passes or its questions).
func e2fsckProblems(out string, n int) string {
	var problems []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "e2fsck 1.") || strings.HasPrefix(line, "Pass ") || strings.HasPrefix(line, "Fix? ") {
			continue
		}
		if problems = append(problems, line); len(problems) == n {
			break
		}
	}
	return strings.Join(problems, "; ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
