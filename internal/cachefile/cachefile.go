// Package cachefile owns how vmlab writes files into its cache (the unpacked
// vmlinux, initramfs archives): whole or not at all, so a reader never
// trusts a partial file.
package cachefile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// WriteBytes writes data as the file at path, as Write does.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write writes a file through write into a temporary file beside path,
// syncs it and renames it into place, so that nobody, not even a concurrent
// writer of the same content, sees a partial file under the final name.
func Write(path string, write func(io.Writer) error) (err error) {
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
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
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
