package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// RuntimeDir returns the directory of this user's lab sockets, creating it
// if needed: $XDG_RUNTIME_DIR/vmlab, else /tmp/vmlab-UID. A directory that
// is not ours, or that others may enter, is refused: a socket in it could
// be anyone's.
func RuntimeDir() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("vmlab-%d", os.Geteuid()))
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		dir = filepath.Join(x, "vmlab")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create the lab directory %s: %w", dir, err)
	}
	if err := checkPrivate(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// checkPrivate makes sure dir is a directory (not a symlink) owned by us
// that nobody else may enter.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check the lab directory: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("the lab directory %s is not a directory: remove it, or set XDG_RUNTIME_DIR", dir)
	case st == nil:
		return fmt.Errorf("the lab directory %s: its owner cannot be read: set XDG_RUNTIME_DIR to a directory of yours", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("the lab directory %s is not yours (owner uid %d): remove it, or set XDG_RUNTIME_DIR", dir, st.Uid)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("the lab directory %s is open to others (mode %v): chmod 700 it, or set XDG_RUNTIME_DIR", dir, fi.Mode().Perm())
	}
	return nil
}

// validName is a lab name: it names files in the runtime directory.
var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// CheckName says what is wrong with a lab name, if anything.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("lab name %q: use 1 to 64 letters, digits, '_', '-' or '.', not starting with '-' or '.'", name)
	}
	return nil
}

// DefaultName is the lab name of a test file: its base name without the
// extension ("web.star" is "web"), made a valid name.
func DefaultName(file string) string {
	return CleanName(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
}

// CleanName makes s a lab name: characters a name may not hold become
// '_', leading '-' and '.' go, and it is cut to 64 bytes; "" becomes "lab".
func CleanName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	name := strings.TrimLeft(string(b), "-.")
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		name = "lab"
	}
	return name
}

func sockPath(dir, name string) string { return filepath.Join(dir, name+".sock") }
func lockPath(dir, name string) string { return filepath.Join(dir, name+".lock") }

// lock is a lab's lock file, held (flock) while the lab runs. It holds the
// LabInfo as JSON, so a second vmlab up can say who has it.
type lock struct {
	f    *os.File
	path string
}

// AlreadyUpError says a lab of that name is running.
type AlreadyUpError struct {
	Info LabInfo
}

func (e *AlreadyUpError) Error() string {
	i := e.Info
	return fmt.Sprintf("lab %q is already up (vmlab pid %d, file %s): use it with vmlab shell -lab %s MACHINE or vmlab status -lab %s, stop it with vmlab down -lab %s, or give this one another name with -lab NAME",
		i.Name, i.Pid, i.File, i.Name, i.Name, i.Name)
}

// transientHold bounds how long acquire waits for a lock held by no live
// vmlab: a probe (held) cleaning up a dead lab's files, or a lab that has
// locked and not yet written its pid. Both take well under a millisecond.
const transientHold = time.Second

// acquire takes the lab's lock, or returns an *AlreadyUpError. A lock
// file whose path was removed while we waited (the last lab cleaning up)
// is taken again, so two labs never both believe they hold it.
func acquire(dir, name string) (*lock, error) {
	path := lockPath(dir, name)
	deadline := time.Now().Add(transientHold)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open the lock of lab %q: %w", name, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if !errors.Is(err, unix.EWOULDBLOCK) {
				f.Close()
				return nil, fmt.Errorf("lock lab %q: %w", name, err)
			}
			info, _ := readInfo(path)
			info.Name = name
			if alive(info.Pid) {
				f.Close()
				return nil, &AlreadyUpError{Info: info}
			}
			if !lockWithin(f, time.Until(deadline)) { // f is the waiter's now
				return nil, fmt.Errorf("lab %q: its lock %s is held by a process that is not a running lab (pid %d in it): retry; if no vmlab runs, remove the file", name, path, info.Pid)
			}
		}
		if sameFile(f, path) {
			return &lock{f: f, path: path}, nil
		}
		f.Close() // removed or replaced meanwhile: take the new one
	}
}

// lockWithin waits up to d for f's exclusive lock, whose holder is no
// running lab (a probe cleaning up, or a lab between locking and writing
// its pid: both let go in well under a millisecond). It says whether the
// lock is ours. When it is not, f is the waiter's: closed by it, at once
// when the lock could not be taken, or later when d ran out first (it
// lets go of a lock it gets after that), so the caller must not use f.
func lockWithin(f *os.File, d time.Duration) bool {
	var mu sync.Mutex
	abandoned := false
	got := make(chan bool, 1)
	go func() {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if abandoned || err != nil {
			f.Close() // lets go of the lock too, if it was taken
			if !abandoned {
				got <- false
			}
			return
		}
		got <- true
	}()
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case ok := <-got:
		return ok
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case ok := <-got: // it came as the time ran out
		return ok
	default:
		abandoned = true
		return false
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func (l *lock) write(info LabInfo) error {
	b, _ := json.Marshal(info)
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("write the lock of lab %q: %w", info.Name, err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("write the lock of lab %q: %w", info.Name, err)
	}
	return nil
}

// release removes the lock file, then unlocks it (removing it first means
// nobody can take a lock on a file that is about to disappear without
// noticing: acquire checks the path still names the file it locked).
func (l *lock) release() {
	os.Remove(l.path)
	l.f.Close()
}

func readInfo(path string) (LabInfo, error) {
	var info LabInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}

// held reports whether the lab's lock is held by a running vmlab. A lock
// nobody holds is stale, and held removes it with the lab's socket; stale
// then names what was removed.
func held(dir, name string) (up bool, stale bool, err error) {
	path := lockPath(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// A socket without a lock file: left by a lab killed between
		// its cleanup steps.
		if os.Remove(sockPath(dir, name)) == nil {
			return false, true, nil
		}
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("open the lock of lab %q: %w", name, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return true, false, nil
		}
		return false, false, fmt.Errorf("lock lab %q: %w", name, err)
	}
	// Nobody holds it: the lab's vmlab died without cleaning up (SIGKILL,
	// a crash). Remove its files while we hold the lock.
	os.Remove(sockPath(dir, name))
	if sameFile(f, path) {
		os.Remove(path)
	}
	return false, true, nil
}

// Labs returns the names of the labs that are up, sorted. Files of labs
// that crashed or were killed are removed; logf (nil: silent) says so.
func Labs(logf func(string, ...any)) ([]string, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return nil, err
	}
	return labsIn(dir, logf)
}

func labsIn(dir string, logf func(string, ...any)) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	seen := map[string]bool{}
	var up []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			name, ok = strings.CutSuffix(e.Name(), ".sock")
		}
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		isUp, stale, err := held(dir, name)
		if err != nil {
			return nil, err
		}
		if stale {
			noteStale(logf, name)
		}
		if isUp {
			up = append(up, name)
		}
	}
	slices.Sort(up)
	return up, nil
}

// CheckFree returns an *AlreadyUpError when a lab called name is up, so a
// command can say so before it boots anything (Listen decides for good).
// The files of a lab of that name that crashed or was killed are removed,
// and logf (nil: silent) says so.
func CheckFree(name string, logf func(string, ...any)) error {
	dir, err := RuntimeDir()
	if err != nil {
		return err
	}
	up, stale, err := held(dir, name)
	if stale {
		noteStale(logf, name)
	}
	if err != nil || !up {
		return err
	}
	info, _ := readInfo(lockPath(dir, name))
	info.Name = name
	return &AlreadyUpError{Info: info}
}

func noteStale(logf func(string, ...any), name string) {
	if logf != nil {
		logf("removed the stale socket of lab %q: its vmlab is gone (crashed or killed)", name)
	}
}
