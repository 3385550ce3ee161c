package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/cachefile"
	"github.com/vmlab/vmlab/internal/rootpath"
)

// guestPackages are what the guest side needs in every debian: image,
// beyond minbase (which brings dash as /bin/sh for commands, bash for
// interactive shells, and coreutils):
//   - kmod: modprobe, which the agent runs for a machine's modules
//     (internal/agent/setup.go) and the kernel runs for its requests;
//   - passwd: groupadd, useradd and usermod, which the agent runs for a
//     machine's users and groups (minbase has it as Priority: required,
//     but the agent must not depend on that).
var guestPackages = []string{"kmod", "passwd"}

// plan is one debian: build.
type plan struct {
	ref      Ref
	codename string
	release  time.Time
	arch     string
	packages []string // the user's, sorted
	archive  archive
	// security: the security archive has the suite's -security suite,
	// of securityDate.
	security     bool
	securityDate time.Time
	key          string
}

// buildDebian checks the packages exist, builds the root with mmdebstrap
// and makes it an image file.
func (s *Store) buildDebian(ctx context.Context, dir string, p plan) (Image, error) {
	start := time.Now()
	missing, err := p.archive.missingPackages(ctx, p.codename, p.arch, p.packages)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: check packages in %s: %w", p.ref, p.codename, err)
	}
	if len(missing) > 0 {
		return Image{}, fmt.Errorf("image %s: no package %s in %s (%s %s): check the name on packages.debian.org, or enable its component in the host's apt sources",
			p.ref, strings.Join(missing, ", "), p.codename, p.archive.Mirror, strings.Join(p.archive.components(), " "))
	}
	security := "no security suite"
	if p.security {
		security = "security of " + p.securityDate.Format(time.DateOnly)
	}
	s.logf("image %s: building %s (%s of %s, %s, %s, packages: %s; checked in %.1fs)", p.ref, p.key, p.codename,
		p.release.Format(time.DateOnly), security, p.arch, orNone(p.packages), time.Since(start).Seconds())
	img := Image{
		FSType: "erofs", Key: p.key, Ref: "debian:" + p.codename, Packages: p.packages,
		Release: p.release, Security: p.securityDate, Arch: p.arch, Recipe: Recipe,
	}
	if img.Ref != p.ref.String() {
		img.Asked = p.ref.String()
	}
	build := s.build
	if build == nil {
		build = s.mmdebstrap
	}
	root, release, err := newRoot(dir)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", p.ref, err)
	}
	defer release()
	defer s.removeRoot(root)
	if err := build(ctx, p, root); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", p.ref, err)
	}
	return s.makeImage(ctx, dir, p.ref, img, root)
}

// getOCI unpacks an OCI image through UnpackOCI and makes it an image
// file, unless the cache has its digest already.
func (s *Store) getOCI(ctx context.Context, dir string, ref Ref) (Image, error) {
	if UnpackOCI == nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, errNoOCI)
	}
	// The digest from the index, manifest and config alone: a cached
	// image is not unpacked again to learn it.
	locked := ""
	if DigestOCI != nil {
		if digest, err := DigestOCI(ctx, ref); err == nil {
			if img, err := s.cached(dir, ociKey(digest)); err == nil {
				return img, nil
			}
			img, unlock, err := s.lockOCI(ctx, dir, ref, ociKey(digest))
			if err != nil || img.Key != "" {
				return img, err
			}
			defer unlock()
			locked = ociKey(digest)
		}
	}
	root, release, err := newRoot(dir)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer release()
	defer s.removeRoot(root)
	start := time.Now()
	digest, err := UnpackOCI(withLogf(ctx, s.logf), ref, root)
	if err != nil {
		return Image{}, unpackError(ref, err)
	}
	s.logf("image %s: unpacked %s in %.1fs", ref, digest, time.Since(start).Seconds())
	key := ociKey(digest)
	if img, err := s.cached(dir, key); err == nil {
		return img, nil
	}
	if key != locked {
		img, unlock, err := s.lockOCI(ctx, dir, ref, key)
		if err != nil || img.Key != "" {
			return img, err
		}
		defer unlock()
	}
	img := Image{FSType: "erofs", Key: key, Ref: ref.String(), Digest: digest, Arch: s.debArch(), Recipe: Recipe}
	return s.makeImage(ctx, dir, ref, img, root)
}

// unpackError is UnpackOCI's error for ref, which names the image itself
// ("opening image oci:DIR: ..."): only what it lacks is added.
func unpackError(ref Ref, err error) error {
	if strings.Contains(err.Error(), "image "+ref.String()) {
		return err
	}
	return fmt.Errorf("image %s: unpack: %w", ref, err)
}

// lockOCI takes the build lock of an OCI image's key, then returns the
// image if another process made it meanwhile (and nothing to unlock).
func (s *Store) lockOCI(ctx context.Context, dir string, ref Ref, key string) (Image, func(), error) {
	unlock, err := lockKey(ctx, dir, key, func() {
		s.logf("image %s: waiting for another vmlab building %s (%s)", ref, ref, key)
	})
	if err != nil {
		return Image{}, nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if img, err := s.cached(dir, key); err == nil {
		unlock()
		return img, nil, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		s.logf("image %s: %v: rebuilding", ref, err)
	}
	return Image{}, unlock, nil
}

// makeImage makes root the image file of img.Key, records it and trims
// the cache. ref is the reference as asked, for messages.
func (s *Store) makeImage(ctx context.Context, dir string, ref Ref, img Image, root string) (Image, error) {
	if err := checkKey(img.Key); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	img.Path = filepath.Join(dir, img.Key+ext)
	img.Systemd = hasSystemd(root)
	start := time.Now()
	if err := s.mkfs(ctx, root, img.Path); err != nil {
		return Image{}, fmt.Errorf("image %s: make file system: %w", ref, err)
	}
	fi, err := os.Stat(img.Path)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	img.Size = fi.Size()
	if img.SHA256, err = fileSHA256(img.Path); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	img.Built = time.Now().UTC()
	s.logf("image %s: %s file system of %.1f MB made in %.1fs", ref, img.FSType, float64(img.Size)/1e6, time.Since(start).Seconds())
	rec, _ := json.MarshalIndent(img, "", "  ")
	if err := cachefile.WriteBytes(recordPath(dir, img.Key), append(rec, '\n')); err != nil {
		return Image{}, fmt.Errorf("image %s: record: %w", ref, err)
	}
	if err := s.use(dir, img); err != nil {
		return Image{}, err
	}
	img.Used = time.Now()
	s.removeRoot(root) // before the trim, which counts live roots
	s.trim(dir)
	return img, nil
}

// rootPrefix starts the name of a root's private directory.
const rootPrefix = ".root-"

// privateDir makes dir mode 0700, and checks it is the caller's: the
// image cache holds roots with set-id files, so another user must neither
// enter it nor own it (and so be able to open it up), even when it was
// made before with other modes.
func privateDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check image cache %s: %w", dir, err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		return fmt.Errorf("image cache %s belongs to uid %d, not to you (uid %d): remove it, or set XDG_CACHE_HOME to a directory of yours", dir, uid, os.Geteuid())
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make image cache %s private: %w", dir, err)
		}
	}
	return nil
}

// removeRoot removes a build's root directory, and the private directory
// newRoot made it in, after unmounting what a killed mmdebstrap left
// mounted in it: removing the files of a mounted /proc, /sys or /dev would
// reach the host's. Anything still mounted keeps the directory, with a
// log line; so does a failed removal.
func (s *Store) removeRoot(root string) {
	if err := unmountUnder(root); err != nil {
		s.logf("image cache: keeping %s: %v", root, err)
		return
	}
	if err := os.RemoveAll(root); err != nil {
		s.logf("image cache: removing the build root %s: %v", root, err)
		return
	}
	if parent := filepath.Dir(root); strings.HasPrefix(filepath.Base(parent), rootPrefix) {
		if err := os.Remove(parent); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logf("image cache: removing %s: %v", parent, err)
		}
	}
}

// unmountUnder unmounts every mount at or under dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var points []string
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return nil
}

// mkfs makes root the erofs image at path, written under a temporary
// name (locked, so a sweep removes it only when its writer died) and renamed into place. Measured on bookworm minbase +
// curl (173 MB of files, 2 cores): erofs lz4 109 MB in 1.2 s; lz4hc 101 MB
// in 6.6 s; uncompressed erofs 177 MB in 0.6 s; ext4 -d 291 MB in 1.1 s.
// lz4 it is: the host kernel's erofs reads it (CONFIG_EROFS_FS_ZIP).
func (s *Store) mkfs(ctx context.Context, root, path string) error {
	tmp, err := createTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		os.Remove(tmp.Name())
		tmp.Close()
	}()
	cmd := exec.CommandContext(ctx, "mkfs.erofs", append(slices.Clone(mkfsFlags), tmp.Name(), root)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("mkfs.erofs not found: install erofs-utils (scripts/deps)")
		}
		return fmt.Errorf("mkfs.erofs: %w: %s", err, tail(out))
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// mkfsFlags are mkfs.erofs's options: lz4 (see mkfs), and every file's
// time 0 (-T0), so that the image does not vary with when it was built.
var mkfsFlags = []string{"-zlz4", "-T0"}

// hasSystemd says whether the root file system at root has
// /lib/systemd/systemd (spec.SystemdPath), an executable file, following
// its symbolic links inside root (a merged /usr's lib -> usr/lib, or an
// absolute link, resolved in the image as the guest would).
func hasSystemd(root string) bool {
	path, err := rootpath.Resolve(root, "/lib/systemd/systemd")
	if err != nil {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// mmdebstrap builds the root of p into root (an empty directory).
func (s *Store) mmdebstrap(ctx context.Context, p plan, root string) error {
	args := mmdebstrapArgs(p, root)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	// Canceled, mmdebstrap gets SIGTERM, on which it unmounts what it
	// mounted in the root (proc, sys, dev/pts) before it exits; SIGKILL
	// would leave them mounted (removeRoot copes with that too).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("mmdebstrap not found: install mmdebstrap (scripts/deps)")
		}
		return fmt.Errorf("start mmdebstrap: %w", err)
	}
	lines := s.progress(p.ref, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("mmdebstrap %s: %w%s", p.codename, err, explain(lines))
	}
	s.logf("image %s: mmdebstrap done in %.1fs", p.ref, time.Since(start).Seconds())
	return nil
}

// mmdebstrapArgs are mmdebstrap's arguments for p: the host's
// components of the mirror and of the security archive.
func mmdebstrapArgs(p plan, root string) []string {
	args := []string{
		// --verbose for apt's Get: and Fetched lines: progress says what
		// is downloaded (see progress).
		"--mode=root", "--variant=minbase", "--format=directory", "--verbose",
		"--architectures=" + p.arch,
		"--include=" + strings.Join(append(append([]string{}, guestPackages...), p.packages...), ","),
	}
	if p.archive.NoValidUntil {
		args = append(args, `--aptopt=Acquire::Check-Valid-Until "false"`)
	}
	args = append(args,
		p.codename, root,
		"deb "+p.archive.Mirror+" "+p.codename+" "+strings.Join(p.archive.components(), " "),
	)
	if p.security {
		args = append(args, "deb "+p.archive.Security+" "+p.codename+"-security "+strings.Join(p.archive.securityComponents(), " "))
	}
	return args
}

// progress passes mmdebstrap's step lines ("I: downloading packages
// with apt...") to Logf, and apt's downloads as one line per apt run
// ("downloaded 97 files: Fetched 40.2 MB in 6s (6.7 MB/s)"): ~12 lines
// for a build. It returns mmdebstrap's last lines for an error.
func (s *Store) progress(ref Ref, r io.Reader) []string {
	var last []string
	gets, fetched := 0, ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: "):
			// Not passed: --verbose's command lines, and apt's warning that
			// its _apt user cannot enter the cache (0700), which is harmless:
			// apt downloads as root instead.
			if !strings.HasPrefix(line, "I: running --") && !strings.Contains(line, "unsandboxed as root") {
				s.logf("image %s: mmdebstrap: %s", ref, line)
			}
		case strings.HasPrefix(line, "Get:"):
			gets++
		case strings.HasPrefix(line, "Fetched ") && (gets > 0 || line != fetched): // apt may repeat it
			fetched = line
			s.logf("image %s: downloaded %d files: %s", ref, gets, line)
			gets = 0
		}
		last = append(last, line)
		if len(last) > 20 {
			last = last[1:]
		}
	}
	return last
}

var unableRE = regexp.MustCompile(`Unable to locate package (\S+)|Package '?([^' ]+)'? has no installation candidate`)

// explain names a missing package from mmdebstrap's last lines, or
// gives the lines.
func explain(lines []string) string {
	text := strings.Join(lines, "\n")
	if m := unableRE.FindStringSubmatch(text); m != nil {
		return fmt.Sprintf(": no package %s in the suite", m[1]+m[2])
	}
	return ":\n" + text
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return s
}

func orNone(pkgs []string) string {
	if len(pkgs) == 0 {
		return "none"
	}
	return strings.Join(pkgs, ", ")
}
