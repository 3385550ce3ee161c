package coverage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// C and C++ data is read with gcc's own gcov (`gcov --json-format
// --stdout`), one .gcda at a time, rather than with gcovr: gcov comes with
// the gcc that built the programs (a gcovr run calls it anyway), its JSON
// gives every line's count and every function's line range and entry
// count, it names a .gcda written by another build than its .gcno
// ("stamp mismatch"), and a .gcda from each machine can be read apart
// without copying the build tree once per machine, which gcovr needs to
// keep machines apart.

// gcovJSON is the part of gcov's JSON format (version 1, gcc 9 to 14) the
// merge reads.
type gcovJSON struct {
	FormatVersion string `json:"format_version"`
	CWD           string `json:"current_working_directory"`
	Files         []struct {
		File      string `json:"file"`
		Functions []struct {
			Name           string `json:"name"`
			DemangledName  string `json:"demangled_name"`
			StartLine      int    `json:"start_line"`
			EndLine        int    `json:"end_line"`
			ExecutionCount int64  `json:"execution_count"`
		} `json:"functions"`
		Lines []struct {
			LineNumber int   `json:"line_number"`
			Count      int64 `json:"count"`
		} `json:"lines"`
	} `json:"files"`
}

// gcovTool is the gcov command, or an error naming what to install.
func gcovTool() (string, error) {
	p, err := exec.LookPath("gcov")
	if err != nil {
		return "", errors.New("gcov is not on PATH: install the gcc that built the programs (Debian: apt-get install gcc)")
	}
	return p, nil
}

// readGcov reads the C data of every run that has some into b.
func readGcov(ctx context.Context, b *builder, tmp string, logf func(string, ...any)) error {
	var gcov string
	var errs []error
	for _, r := range b.runs {
		if !r.HasGcov {
			continue
		}
		if gcov == "" {
			var err error
			if gcov, err = gcovTool(); err != nil {
				return fmt.Errorf("reading C coverage data of %s in test %s: %w", r.Machine, r.Test, err)
			}
		}
		root := GuestData(r.dir, GcovDir)
		gcdas, err := gcdaFiles(root)
		if err != nil {
			return fmt.Errorf("reading C coverage data of %s in test %s: %w", r.Machine, r.Test, err)
		}
		for _, gcda := range gcdas {
			if err := readGcda(ctx, b, r, gcov, root, gcda, tmp, logf); err != nil {
				errs = append(errs, fmt.Errorf("reading C coverage data of %s in test %s: %w", r.Machine, r.Test, err))
			}
		}
	}
	return errors.Join(errs...)
}

// readGcda runs gcov on one .gcda of run r. The run wrote it under root at
// its object's absolute path (GCOV_PREFIX_STRIP=0), and the compiler wrote
// the .gcno beside the object: gcov wants both side by side, so both are
// linked into a scratch directory.
func readGcda(ctx context.Context, b *builder, r *Run, gcov, root, gcda, tmp string, logf func(string, ...any)) error {
	rel, err := filepath.Rel(root, gcda)
	if err != nil {
		return err
	}
	object := string(filepath.Separator) + strings.TrimSuffix(rel, ".gcda")
	gcno := object + ".gcno"
	notes, err := os.Stat(gcno)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no notes file %s: the build tree was moved or cleaned since the build that ran; rebuild and run again", object+".gcda", gcno)
	}
	work, err := os.MkdirTemp(tmp, "gcov")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// Absolute: a link's relative target is read from the link's
	// directory, and the coverage directory may be relative (cov/).
	target, err := filepath.Abs(gcda)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, filepath.Join(work, "o.gcda")); err != nil {
		return err
	}
	if err := os.Symlink(gcno, filepath.Join(work, "o.gcno")); err != nil {
		return err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gcov, "--json-format", "--stdout", "o.gcda")
	cmd.Dir, cmd.Stdout, cmd.Stderr = work, &stdout, &stderr
	err = cmd.Run()
	msg := strings.TrimSpace(strings.ReplaceAll(stderr.String(), "o.gcda", object+".gcda"))
	if strings.Contains(msg, "stamp mismatch") {
		return fmt.Errorf("%s was written by a different build than %s (gcov: stamp mismatch): not merged; rebuild, install the same build on every machine and run again", object+".gcda", gcno)
	}
	if err != nil {
		return fmt.Errorf("gcov %s: %w: %s", object+".gcda", err, msg)
	}
	// gcov reads a data file it cannot open as "not executed": every
	// count would be a false zero.
	if strings.Contains(msg, "cannot open data file") {
		return fmt.Errorf("gcov could not read %s (%s): not merged", gcda, msg)
	}
	if msg != "" {
		logf("coverage: gcov %s: %s", object+".gcda", msg)
	}
	var doc gcovJSON
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		return fmt.Errorf("reading gcov's JSON for %s: %w", object+".gcda", err)
	}
	if doc.FormatVersion != "1" {
		logf("coverage: gcov JSON format version %q for %s; this vmlab knows version 1", doc.FormatVersion, object+".gcda")
	}
	addGcov(b, r, &doc, gcno, notes.ModTime())
	return nil
}

// addGcov adds what gcov read from one .gcda. A source modified after
// the compiler wrote gcno (built) is noted in b.newer: its line
// numbers are the build's, not today's. gcov checks the same only when
// the source's name, often relative to the compilation's directory,
// resolves from its own working directory, which is a scratch one here.
func addGcov(b *builder, r *Run, doc *gcovJSON, gcno string, built time.Time) {
	for _, jf := range doc.Files {
		name := jf.File
		if !filepath.IsAbs(name) {
			name = filepath.Join(doc.CWD, name)
		}
		name = filepath.Clean(name)
		f := b.file(name, "c")
		if st, err := os.Stat(name); err == nil {
			if f.Source == "" {
				f.Source = name
			}
			if st.ModTime().After(built) && b.newer[name] == "" {
				b.newer[name] = gcno
			}
		}
		for _, l := range jf.Lines {
			f.line(r, l.LineNumber, l.Count, false)
		}
		for _, fn := range jf.Functions {
			nm := fn.DemangledName
			if nm == "" {
				nm = fn.Name
			}
			f.fn(nm, fn.StartLine, fn.EndLine).Hits[r] += fn.ExecutionCount
		}
	}
}
