package report

import (
	"errors"
	"fmt"
	"os"
)

// File is a report written from the whole run when it ends: JUnitFile or
// HTMLFile.
type File struct {
	path   string
	what   string // for errors: "write <what> report: ..."
	render func(tests []*testRecord, path string) ([]byte, error)
}

// NewFiles returns a sink that keeps the run, test by test, and writes each
// file from it on Close. One sink for all the files keeps one copy of the
// run's output (up to 1 MiB of console and of each command's output per
// test), however many files are written. Tests that never ended count as
// failed. The files' directories must exist.
func NewFiles(files ...File) Sink {
	return &fileSink{files: files}
}

type fileSink struct {
	files  []File
	c      collector
	closed bool
	err    error
}

func (f *fileSink) Event(e Event) { f.c.add(e) }

// Close writes the files, once; later calls return the same error.
func (f *fileSink) Close() error {
	if f.closed {
		return f.err
	}
	f.closed = true
	f.c.finishAll()
	var errs []error
	for _, file := range f.files {
		data, err := file.render(f.c.tests, file.path)
		if err == nil {
			err = writePrivate(file.path, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s report: %w", file.what, err))
		}
	}
	f.err = errors.Join(errs...)
	return f.err
}

// Create creates or truncates the file at path for a run's output, readable
// by its owner only (0600, also when it existed): events and reports hold
// every command's output.
func Create(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func writePrivate(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}
