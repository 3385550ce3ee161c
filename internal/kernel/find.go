package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNotFound is wrapped by Find's error when no usable kernel is installed.
var ErrNotFound = errors.New("no kernel found")

// Find returns the kernel image to boot. A non-empty path is returned as it
// is once it exists. Otherwise Find picks the newest <h.Boot>/vmlinuz-<release>
// (in version order, so 6.1.0-10 beats 6.1.0-9) that has a module tree
// <h.Modules>/<release>: without its modules a distro kernel cannot mount the
// host's root over virtio.
func (h Host) Find(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("find kernel: %w", err)
		}
		return path, nil
	}
	images, err := filepath.Glob(filepath.Join(h.bootDir(), "vmlinuz-*"))
	if err != nil {
		return "", fmt.Errorf("find kernel: %w", err)
	}
	var usable, orphans []string
	for _, img := range images {
		if fi, err := os.Stat(filepath.Join(h.modulesDir(), release(img))); err == nil && fi.IsDir() {
			usable = append(usable, img)
		} else {
			orphans = append(orphans, img)
		}
	}
	if len(usable) == 0 {
		return "", h.notFound(orphans)
	}
	return slices.MaxFunc(usable, func(a, b string) int {
		return compareVersions(release(a), release(b))
	}), nil
}

// release returns the release part of a vmlinuz-<release> file name.
func release(image string) string {
	return strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
}

func (h Host) notFound(orphans []string) error {
	looked := fmt.Sprintf("looked for %s with a module tree in %s/<release>",
		filepath.Join(h.bootDir(), "vmlinuz-<release>"), h.modulesDir())
	if len(orphans) > 0 {
		looked += fmt.Sprintf("; %s have no module tree", strings.Join(orphans, ", "))
	}
	return fmt.Errorf("find kernel: %w: %s; install one with `apt-get install linux-image-amd64` or pass a kernel image", ErrNotFound, looked)
}

// compareVersions orders release strings the way `sort -V` does for kernel
// releases: runs of digits compare as numbers, other runs as text.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		var ra, rb string
		ra, a = cutRun(a)
		rb, b = cutRun(b)
		if c := compareRuns(ra, rb); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// cutRun splits s after its leading run of digits or of non-digits.
func cutRun(s string) (run, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRuns(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) - len(b)
		}
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
