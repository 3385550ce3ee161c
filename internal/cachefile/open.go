package cachefile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Errors of OpenRegular.
var (
	ErrLink       = errors.New("a symbolic link")
	ErrNotRegular = errors.New("not a regular file")
)

// OpenRegular opens path for reading when it is a regular file. The cache
// holds nothing else: a link, a FIFO or a device in it, put there by hand
// or by damage, is refused at once (ErrLink, ErrNotRegular, in an
// *os.PathError) instead of being read without end or waited on (a FIFO's
// open blocks until a writer comes). The FileInfo is the opened file's, and
// comes with ErrNotRegular too.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		err = ErrLink
	}
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	if err != nil {
		f.Close()
		return nil, fi, err
	}
	return f, fi, nil
}
