package kernel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// extractCached returns cacheDir/vmlinux-<sha256 of data>, extracting the
// vmlinux from the bzImage first if that file does not exist, and marks it
// in use by this process. Keying by
// content rather than path or mtime means an upgraded kernel gets a new
// entry, and the same kernel under another name reuses the old one.
func extractCached(image string, data []byte, hdr setupHeader, cacheDir string) (string, error) {
	sum := sha256.Sum256(data)
	path := filepath.Join(cacheDir, "vmlinux-"+hex.EncodeToString(sum[:]))
	err := cachefile.Use(path, func(w io.Writer) error {
		vmlinux, err := decompressPayload(hdr.payload)
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if err := checkVmlinux(vmlinux); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		_, err = w.Write(vmlinux)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("cache vmlinux from %s: %w", image, err)
	}
	return path, nil
}
