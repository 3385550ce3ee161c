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
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/cachefile"
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
	security bool // the suite has a -security suite
	key      string
}

// buildDebian checks the packages exist, builds the root with mmdebstrap
// and makes it an image file.
func (s *Store) buildDebian(ctx context.Context, dir string, p plan) (Image, error) {
	start := time.Now()
	s.logf("image %s: building %s (%s of %s, %s, packages: %s)", p.ref, p.key, p.codename,
		p.release.Format(time.DateOnly), p.arch, orNone(p.packages))
	missing, err := p.archive.missingPackages(ctx, p.codename, p.arch, p.packages)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: check packages in %s: %w", p.ref, p.codename, err)
	}
	if len(missing) > 0 {
		return Image{}, fmt.Errorf("image %s: no package %s in %s (%s main): check the name on packages.debian.org",
			p.ref, strings.Join(missing, ", "), p.codename, p.archive.Mirror)
	}
	if _, err := p.archive.release(ctx, p.archive.Security, p.codename+"-security"); err == nil {
		p.security = true
	}
	s.logf("image %s: packages checked in %.1fs", p.ref, time.Since(start).Seconds())
	img := Image{
		FSType: "erofs", Key: p.key, Ref: "debian:" + p.codename, Packages: p.packages,
		Release: p.release, Arch: p.arch, Recipe: Recipe,
	}
	if img.Ref != p.ref.String() {
		img.Asked = p.ref.String()
	}
	build := s.build
	if build == nil {
		build = s.mmdebstrap
	}
	return s.makeImage(ctx, dir, img, func(root string) error { return build(ctx, p, root) })
}

// getOCI unpacks an OCI image through UnpackOCI and makes it an image
// file, unless the cache has its digest already.
func (s *Store) getOCI(ctx context.Context, dir string, ref Ref) (Image, error) {
	if UnpackOCI == nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, errNoOCI)
	}
	root, err := os.MkdirTemp(dir, ".root-")
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer os.RemoveAll(root)
	start := time.Now()
	digest, err := UnpackOCI(ctx, ref, root)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: unpack: %w", ref, err)
	}
	s.logf("image %s: unpacked %s in %.1fs", ref, digest, time.Since(start).Seconds())
	key := ociKey(digest)
	if img, err := s.cached(dir, key); err == nil {
		return img, nil
	}
	img := Image{FSType: "erofs", Key: key, Ref: ref.String(), Digest: digest, Arch: s.debArch(), Recipe: Recipe}
	return s.makeImage(ctx, dir, img, func(string) error { return nil }, root)
}

// makeImage fills a root directory through fill, makes it the image
// file of img.Key, records it and trims the cache. A given root (OCI) is
// used as it is.
func (s *Store) makeImage(ctx context.Context, dir string, img Image, fill func(root string) error, given ...string) (Image, error) {
	var root string
	if len(given) > 0 {
		root = given[0]
	} else {
		var err error
		if root, err = os.MkdirTemp(dir, ".root-"); err != nil {
			return Image{}, fmt.Errorf("image %s: %w", img.Ref, err)
		}
		defer os.RemoveAll(root)
		if err := fill(root); err != nil {
			return Image{}, fmt.Errorf("image %s: %w", img.Ref, err)
		}
	}
	img.Path = filepath.Join(dir, img.Key+ext)
	start := time.Now()
	if err := s.mkfs(ctx, root, img.Path); err != nil {
		return Image{}, fmt.Errorf("image %s: make file system: %w", img.Ref, err)
	}
	fi, err := os.Stat(img.Path)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", img.Ref, err)
	}
	img.Size = fi.Size()
	if img.SHA256, err = fileSHA256(img.Path); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", img.Ref, err)
	}
	img.Built = time.Now().UTC()
	s.logf("image %s: %s file system of %.1f MB made in %.1fs", img.Ref, img.FSType, float64(img.Size)/1e6, time.Since(start).Seconds())
	rec, _ := json.MarshalIndent(img, "", "  ")
	if err := cachefile.WriteBytes(recordPath(dir, img.Key), append(rec, '\n')); err != nil {
		return Image{}, fmt.Errorf("image %s: record: %w", img.Ref, err)
	}
	if err := s.use(dir, img); err != nil {
		return Image{}, err
	}
	img.Used = time.Now()
	s.trim(dir)
	return img, nil
}

// mkfs makes root the erofs image at path, written under a temporary
// name (locked, as cachefile.Write does, so a trim removes it only when
// its writer died) and renamed into place. lz4hc: the host kernel's erofs
// reads it (CONFIG_EROFS_FS_ZIP), and it is ~2.3x smaller than ext4 -d.
func (s *Store) mkfs(ctx context.Context, root, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_SH); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mkfs.erofs", "-zlz4hc", "-T0", tmp.Name(), root)
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

// mmdebstrap builds the root of p into root (an empty directory).
func (s *Store) mmdebstrap(ctx context.Context, p plan, root string) error {
	args := []string{
		"--mode=root", "--variant=minbase", "--format=directory",
		"--architectures=" + p.arch,
		"--include=" + strings.Join(append(append([]string{}, guestPackages...), p.packages...), ","),
		p.codename, root,
		"deb " + p.archive.Mirror + " " + p.codename + " main",
	}
	if p.security {
		args = append(args, "deb "+p.archive.Security+" "+p.codename+"-security main")
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
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

// progress passes mmdebstrap's step lines ("I: downloading packages
// with apt...") to Logf, and returns its last lines for an error.
func (s *Store) progress(ref Ref, r io.Reader) []string {
	var last []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			s.logf("image %s: mmdebstrap: %s", ref, line)
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
