package kernel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// extractCached returns cacheDir/vmlinux-<sha256 of data>, extracting the
// vmlinux from the bzImage first if that file does not exist. Keying by
// content rather than path or mtime means an upgraded kernel gets a new
// entry, and the same kernel under another name reuses the old one.
func extractCached(image string, data []byte, hdr setupHeader, cacheDir string) (string, error) {
	sum := sha256.Sum256(data)
	path := filepath.Join(cacheDir, "vmlinux-"+hex.EncodeToString(sum[:]))
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, nil
	}
	vmlinux, err := decompressPayload(hdr.payload)
	if err != nil {
		return "", fmt.Errorf("extract vmlinux from %s: %w", image, err)
	}
	if err := checkVmlinux(vmlinux); err != nil {
		return "", fmt.Errorf("check vmlinux from %s: %w", image, err)
	}
	if err := writeFileAtomic(path, vmlinux); err != nil {
		return "", fmt.Errorf("cache vmlinux from %s: %w", image, err)
	}
	return path, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so that a reader, or a racing writer of the same content, never
// sees a partial file.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Sync before the rename: otherwise a crash can leave an empty file
	// under the final name, which the cache would then trust.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
