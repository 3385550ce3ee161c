package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// setupEnv is where a setup is applied: root is "/" in a guest, and run
// runs a tool (groupadd, useradd, modprobe), returning an error that holds
// its output. Tests point root at a directory and record the tools instead.
type setupEnv struct {
	root string
	run  func(ctx context.Context, name string, args ...string) error
}

// setup serves OpSetup: it applies req in the guest, reading the files'
// contents from in.
func (s *server) setup(ctx context.Context, req *agentproto.Setup, in *agentproto.Queue) agentproto.Result {
	// Drain what the host still sends so its DataEOF is consumed either way,
	// unless the request is canceled or the channel is gone.
	stop := context.AfterFunc(ctx, func() { in.Close(ctx.Err()) })
	defer stop()
	defer io.Copy(io.Discard, in)
	if !IsGuest() {
		return agentproto.Result{Error: "setup requests are served only inside a guest"}
	}
	if err := applySetup(ctx, setupEnv{root: "/", run: runTool}, req, in); err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	return agentproto.Result{}
}

// applySetup applies groups, users, modules, sysctls and files in that
// order, and stops at the first that fails, naming it.
func applySetup(ctx context.Context, env setupEnv, req *agentproto.Setup, in io.Reader) error {
	if err := addGroups(ctx, env, req.Groups); err != nil {
		return err
	}
	for _, u := range req.Users {
		if err := addUser(ctx, env, u, req.Groups); err != nil {
			return err
		}
	}
	if len(req.Modules) > 0 {
		args := append([]string{"-a"}, req.Modules...)
		if err := env.run(ctx, "modprobe", args...); err != nil {
			return fmt.Errorf("load modules %s: %w", strings.Join(req.Modules, ", "), err)
		}
	}
	for _, sc := range req.Sysctls {
		if err := writeSysctl(env.root, sc); err != nil {
			return fmt.Errorf("sysctl %s: %w", sc.Key, err)
		}
	}
	// Files are read from the Data frames in the order they were sent.
	r := bufio.NewReaderSize(in, agentproto.ChunkSize)
	w := newFileWriter(env.root)
	defer w.close()
	for _, f := range req.Files {
		if err := w.write(f, r); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	return nil
}

// addGroups creates the groups that do not exist yet, with one groupadd
// each: a test declares a handful.
func addGroups(ctx context.Context, env setupEnv, groups []string) error {
	known, err := os.ReadFile(filepath.Join(env.root, "etc/group"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read groups: %w", err)
	}
	for _, g := range groups {
		if hasEntry(known, g) {
			continue
		}
		if err := env.run(ctx, "groupadd", "--", g); err != nil {
			return fmt.Errorf("group %s: %w", g, err)
		}
	}
	return nil
}

// hasEntry says whether an /etc/group- or /etc/passwd-style file has a
// line for name.
func hasEntry(file []byte, name string) bool {
	for line := range bytes.Lines(file) {
		if n, _, ok := bytes.Cut(line, []byte(":")); ok && string(n) == name {
			return true
		}
	}
	return false
}

// addUser creates u with a home and a group of its name as its primary
// group. When that group exists already (declared in groups, or in the
// guest's /etc/group), it becomes the primary group: useradd -U refuses an
// existing group, and the boot failed. A user that exists already (the
// machine's disk kept it from an earlier boot) gets the declared shell and
// groups with usermod instead: useradd would refuse it.
func addUser(ctx context.Context, env setupEnv, u agentproto.Account, groups []string) error {
	shell := u.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	known, err := os.ReadFile(filepath.Join(env.root, "etc/group"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("user %s: read groups: %w", u.Name, err)
	}
	users, err := os.ReadFile(filepath.Join(env.root, "etc/passwd"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("user %s: read users: %w", u.Name, err)
	}
	tool, args := "useradd", []string{"-m", "-U", "-s", shell}
	switch {
	case hasEntry(users, u.Name):
		tool, args = "usermod", []string{"-s", shell}
		if len(u.Groups) > 0 {
			args = append(args, "-a")
		}
	case slices.Contains(groups, u.Name) || hasEntry(known, u.Name):
		args = []string{"-m", "-g", u.Name, "-s", shell}
	}
	if len(u.Groups) > 0 {
		args = append(args, "-G", strings.Join(u.Groups, ","))
	}
	if err := env.run(ctx, tool, append(args, "--", u.Name)...); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	return nil
}

// writeSysctl writes a value under /proc/sys. A dotted key maps dots to
// slashes, as sysctl(8) does; a key with a slash is a path already.
func writeSysctl(root string, sc agentproto.Sysctl) error {
	rel := sc.Key
	if !strings.Contains(rel, "/") {
		rel = strings.ReplaceAll(rel, ".", "/")
	}
	if rel == "" || !filepath.IsLocal(rel) {
		return errors.New("not a sysctl name")
	}
	path := filepath.Join(root, "proc/sys", rel)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(sc.Value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fileWriter writes the setup's files. It keeps each parent directory open
// and creates files relative to it, and copies contents through one buffer:
// under TCG every syscall and path walk counts (1000 files took 0.94-1.45 s
// in the guest with os.OpenFile and a MkdirAll each, under load).
type fileWriter struct {
	root  string
	dirs  map[string]int // directory → its descriptor (O_PATH)
	buf   []byte
	umask uint32
}

func newFileWriter(root string) *fileWriter {
	return &fileWriter{root: root, dirs: make(map[string]int), buf: make([]byte, agentproto.ChunkSize), umask: umask()}
}

// umask returns the process's umask, from /proc/self/status (unix.Umask
// would have to change it to read it), or 0o7777 when it cannot tell.
func umask() uint32 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o7777
}

// close closes the directories.
func (w *fileWriter) close() {
	for _, fd := range w.dirs {
		unix.Close(fd)
	}
}

// write writes f's Size bytes from r at f.Path under the root, creating the
// parent directories, and sets its mode (whatever the umask, and for a
// file that existed).
func (w *fileWriter) write(f agentproto.SetupFile, r io.Reader) error {
	// Either error stops the setup: the contents that follow would be
	// read out of step.
	if !filepath.IsAbs(f.Path) {
		return errors.New("path is not absolute")
	}
	if f.Size < 0 {
		return fmt.Errorf("negative size %d", f.Size)
	}
	path := filepath.Join(w.root, f.Path)
	dir, err := w.dir(filepath.Dir(path))
	if err != nil {
		return err
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	// A new file gets its mode from open, unless the umask would take
	// bits away; a file that exists is truncated and gets chmod.
	chmod := mode&w.umask != 0
	fd, err := unix.Openat(dir, filepath.Base(path), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
	if errors.Is(err, unix.EEXIST) {
		chmod = true
		fd, err = unix.Openat(dir, filepath.Base(path), unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	err = w.copy(fd, r, f.Size)
	if err == nil && chmod {
		if e := unix.Fchmod(fd, mode); e != nil {
			err = &os.PathError{Op: "chmod", Path: path, Err: e}
		}
	}
	if e := unix.Close(fd); err == nil && e != nil {
		err = &os.PathError{Op: "close", Path: path, Err: e}
	}
	return err
}

// dir returns a descriptor of the directory, which it creates if need be.
func (w *fileWriter) dir(path string) (int, error) {
	if fd, ok := w.dirs[path]; ok {
		return fd, nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return -1, err
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	w.dirs[path] = fd
	return fd, nil
}

// copy writes n bytes from r to fd.
func (w *fileWriter) copy(fd int, r io.Reader, n int64) error {
	want := n
	for n > 0 {
		k, err := io.ReadFull(r, w.buf[:min(n, int64(len(w.buf)))])
		if k > 0 {
			if _, werr := unix.Write(fd, w.buf[:k]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			n -= int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("content ended before %d bytes", want)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runTool runs a program found on the default PATH (the agent, as PID 1,
// has no PATH of its own) and returns an error with its output when it
// fails.
func runTool(ctx context.Context, name string, args ...string) error {
	path, err := lookPath(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=" + agentproto.DefaultPath, "LANG=C.UTF-8"}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	if err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(agentproto.DefaultPath) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, agentproto.DefaultPath)
}
