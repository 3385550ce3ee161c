package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a vmlab process getting debian:bookworm
// with curl (see TestMain): "DIR MIRROR MODE", MODE "build" (a fake build
// that writes a root) or "hang" (one that writes a file into its root,
// then never returns).
const childEnv = "VMLAB_IMAGE_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(child(strings.Fields(v)))
	}
	os.Exit(m.Run())
}

// child prints its log lines, "BUILD" when its build starts and "KEY k"
// with the image it got.
func child(args []string) int {
	dir, mirror, mode := args[0], args[1], args[2]
	s := &Store{
		Dir:     dir,
		archive: &archive{Mirror: mirror + "/debian", Security: mirror + "/debian-security"},
		arch:    "amd64",
		Logf:    func(format string, a ...any) { fmt.Printf(format+"\n", a...) },
		build: func(_ context.Context, p plan, root string) error {
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			err := os.WriteFile(filepath.Join(root, "etc", "build"), []byte("child\n"), 0o644)
			fmt.Println("BUILD")
			if mode == "hang" {
				select {}
			}
			return err
		},
	}
	img, err := s.Get(context.Background(), Ref{Scheme: SchemeDebian, Suite: "bookworm"}, []string{"curl"})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("KEY", img.Key)
	return 0
}

// startChild runs the test binary as a child vmlab on dir, and returns
// its output lines as they come.
func startChild(t *testing.T, dir, mirror, mode string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir+" "+mirror+" "+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	return cmd, lines
}

// expectLine waits for a line of the child's containing want, returning
// the lines before it.
func expectLine(t *testing.T, lines <-chan string, want string) []string {
	t.Helper()
	var seen []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the child exited without printing %q; it printed %q", want, seen)
			}
			if strings.Contains(l, want) {
				return seen
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no %q from the child in 30 s; it printed %q", want, seen)
		}
	}
}

// blockBuild makes s's build wait until release is closed, saying on
// started that it began.
func blockBuild(s *fakeStore) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	build := s.build
	s.build = func(ctx context.Context, p plan, root string) error {
		close(started)
		<-release
		return build(ctx, p, root)
	}
	return started, release
}

// onLog calls f (once) when s logs a line containing text.
func onLog(s *fakeStore, text string, f func()) {
	logf := s.Logf
	done := false
	s.Logf = func(format string, args ...any) {
		logf(format, args...)
		if line := fmt.Sprintf(format, args...); strings.Contains(line, text) && !done {
			done = true
			f()
		}
	}
}

// TestOneBuildAcrossStores: two Stores on one directory (two machines of
// a lab) getting the same uncached image: the second waits for the
// first's build, says so, and uses its image.
func TestOneBuildAcrossStores(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	a, b := newFakeStore(t, srv), newFakeStore(t, srv)
	b.Dir = a.Dir
	started, release := blockBuild(a)
	waiting := make(chan struct{})
	onLog(b, "waiting for another vmlab building debian:bookworm+curl", func() { close(waiting) })
	ref := mustRef(t, "debian:bookworm")
	type result struct {
		img Image
		err error
	}
	ra, rb := make(chan result, 1), make(chan result, 1)
	go func() {
		img, err := a.Get(context.Background(), ref, []string{"curl"})
		ra <- result{img, err}
	}()
	<-started
	go func() {
		img, err := b.Get(context.Background(), ref, []string{"curl"})
		rb <- result{img, err}
	}()
	select {
	case <-waiting:
	case r := <-rb:
		t.Fatalf("the second Get returned (%s, %v) while the first built; want it to wait", r.img.Key, r.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the second Get did not say it waits in 30 s; logs %q", b.logs)
	}
	close(release)
	x, y := <-ra, <-rb
	if x.err != nil || y.err != nil || x.img.Key != y.img.Key || x.img.Built != y.img.Built {
		t.Fatalf("Gets = (%s built %v, %v), (%s built %v, %v); want one image", x.img.Key, x.img.Built, x.err, y.img.Key, y.img.Built, y.err)
	}
	if n := a.nbuilds() + b.nbuilds(); n != 1 {
		t.Errorf("%d builds; want 1", n)
	}
	if _, err := os.Stat(lockPath(a.Dir, x.img.Key)); !os.IsNotExist(err) {
		t.Errorf("the build lock after the build: %v; want it removed", err)
	}
}

// TestOneBuildAcrossProcesses: another process asking for the image the
// test builds waits for it and uses it, without building.
func TestOneBuildAcrossProcesses(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	s := newFakeStore(t, srv)
	started, release := blockBuild(s)
	res := make(chan error, 1)
	var img Image
	go func() {
		var err error
		img, err = s.Get(context.Background(), mustRef(t, "debian:bookworm"), []string{"curl"})
		res <- err
	}()
	<-started
	cmd, lines := startChild(t, s.Dir, srv.URL, "build")
	before := expectLine(t, lines, "waiting for another vmlab building debian:bookworm+curl")
	close(release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	after := expectLine(t, lines, "KEY "+img.Key)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the child: %v", err)
	}
	for _, l := range append(before, after...) {
		if l == "BUILD" {
			t.Errorf("the child built too; it printed %q then %q", before, after)
		}
	}
	if s.nbuilds() != 1 {
		t.Errorf("%d builds in the test; want 1", s.nbuilds())
	}
}

// TestDeadBuilder: a process that dies building releases the lock; the
// wait for it honours its context; its root stays while it lives and is
// swept once it is dead.
func TestDeadBuilder(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	s := newFakeStore(t, srv)
	cmd, lines := startChild(t, s.Dir, srv.URL, "hang")
	expectLine(t, lines, "BUILD")
	roots, _ := filepath.Glob(filepath.Join(s.Dir, ".root-*"))
	if len(roots) != 1 {
		t.Fatalf("roots in the cache while the child builds: %q; want its one", roots)
	}
	if _, err := s.List(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(roots[0], "root", "etc", "build")); err != nil {
		t.Errorf("the live build's root after a List: %v; want it kept", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	onLog(s, "waiting for another vmlab", cancel)
	_, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"})
	if !errors.Is(err, context.Canceled) || s.nbuilds() != 0 {
		t.Fatalf("Get canceled while waiting: %v after %d builds; want context.Canceled and no build", err, s.nbuilds())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	img, err := s.Get(context.Background(), mustRef(t, "debian:bookworm"), []string{"curl"})
	if err != nil || s.nbuilds() != 1 {
		t.Fatalf("Get after the builder died: %v after %d builds; want it built here", err, s.nbuilds())
	}
	if _, err := os.Stat(roots[0]); !os.IsNotExist(err) || !s.logged("left by a build that died") {
		t.Errorf("the dead build's root: %v, logs %q; want it swept, and said", err, s.logs)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir, ".*")); len(left) != 1 || filepath.Base(left[0]) != ".sweep.lock" {
		t.Errorf("hidden files after the build %s: %q; want only .sweep.lock", img.Key, left)
	}
}

// TestSweep: leftovers of dead builds (a root, a partial image, a build
// lock) go at the next List; the same work of live builds stays.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir}
	dead := filepath.Join(dir, ".root-dead")
	os.MkdirAll(filepath.Join(dead, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(dead, "usr", "bin", "sh"), []byte("x"), 0o755)
	deadFiles := []string{".debian-bookworm-1.erofs.tmp-123", ".debian-bookworm-1.lock"}
	for _, f := range deadFiles {
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	liveRoot, release, err := newRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	os.WriteFile(filepath.Join(liveRoot, "file"), []byte("x"), 0o644)
	liveTmp, err := createTemp(dir, ".debian-bookworm-2.erofs.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	defer liveTmp.Close()
	unlock, err := lockKey(context.Background(), dir, "debian-bookworm-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := s.List(); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{dead}, deadFiles...) {
		if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(p, dir))); !os.IsNotExist(err) {
			t.Errorf("%s of a dead build after List: %v; want it removed", filepath.Base(p), err)
		}
	}
	for _, p := range []string{filepath.Join(liveRoot, "file"), liveTmp.Name(), lockPath(dir, "debian-bookworm-2")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s of a live build after List: %v; want it kept", filepath.Base(p), err)
		}
	}
}

// TestTrimCountsLiveRoots: the bound counts what builds in progress take
// (their roots are not cache entries), and not what dead ones left,
// which goes.
func TestTrimCountsLiveRoots(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir}
	now := time.Now()
	threeEntries(t, dir, now, 10000)
	dead := filepath.Join(dir, ".root-dead")
	os.Mkdir(dead, 0o755)
	os.WriteFile(filepath.Join(dead, "big"), make([]byte, 8000), 0o644)
	s.trim(dir)
	if imgs, _ := s.List(); len(imgs) != 3 {
		t.Errorf("after a trim beside a dead root: %d images; want all 3 (9000 bytes under 10000: the dead root does not count)", len(imgs))
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead root after a trim: %v; want it removed", err)
	}
	live, release, err := newRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	os.WriteFile(filepath.Join(live, "big"), make([]byte, 4000), 0o644)
	s.trim(dir)
	imgs, _ := s.List()
	var keys []string
	for _, img := range imgs {
		keys = append(keys, img.Key)
	}
	if strings.Join(keys, " ") != "debian-bookworm-new" {
		t.Errorf("after a trim beside a live root of 4 KB: %q; want only the newest image (9000 + 4096 bytes over 10000)", keys)
	}
}

// TestOneUnpackAcrossStores: the same for an OCI image whose digest is
// known before unpacking: one unpack.
func TestOneUnpackAcrossStores(t *testing.T) {
	srv := fakeMirror(t)
	a, b := newFakeStore(t, srv), newFakeStore(t, srv)
	b.Dir = a.Dir
	savedU, savedD := UnpackOCI, DigestOCI
	defer func() { UnpackOCI, DigestOCI = savedU, savedD }()
	DigestOCI = func(context.Context, Ref) (string, error) { return "sha256:1234", nil }
	started, release := make(chan struct{}), make(chan struct{})
	unpacks := 0
	UnpackOCI = func(_ context.Context, _ Ref, dir string) (string, error) {
		unpacks++ // the lock keeps the two apart: no data race
		if unpacks == 1 {
			close(started)
			<-release
		}
		return "sha256:1234", os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644)
	}
	onLog(b, "waiting for another vmlab building oci:/srv/layout:v1", func() { close(release) })
	ref := mustRef(t, "oci:/srv/layout:v1")
	errs := make(chan error, 1)
	go func() {
		_, err := a.Get(context.Background(), ref, nil)
		errs <- err
	}()
	<-started
	img, err := b.Get(context.Background(), ref, nil)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err != nil || img.Digest != "sha256:1234" || unpacks != 1 {
		t.Errorf("second Get = %s, %v after %d unpacks; want the first's image, 1 unpack", img.Key, err, unpacks)
	}
}
