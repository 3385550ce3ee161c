package coverage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// goCoverHTML writes the Go blocks, merged over every machine, as a text
// profile (go/profile.txt) and Go's own page for it (go tool cover -html,
// go/index.html) of the files whose source resolveGo found: go tool cover
// reads the sources itself (an absolute name as it is), and would read
// any file a guest named. It returns the page's path relative to dir.
func goCoverHTML(ctx context.Context, dir string, gd *goData) (string, error) {
	out := filepath.Join(dir, GoHTMLDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	profile := filepath.Join(out, goProfileFile)
	if err := gd.writeProfile(profile, func(string) bool { return true }); err != nil {
		return "", err
	}
	if len(gd.found) == 0 {
		return "", errors.New("no Go page by go tool cover -html: no Go source was found (run vmlab from inside the module that built the programs)")
	}
	found := filepath.Join(out, goFoundFile)
	if err := gd.writeProfile(found, func(f string) bool { return gd.found[f] }); err != nil {
		return "", err
	}
	goCmd, err := goTool()
	if err != nil {
		return "", err
	}
	page := filepath.Join(GoHTMLDir, IndexFile)
	cmd := exec.CommandContext(ctx, goCmd, "tool", "cover", "-html="+found, "-o="+filepath.Join(dir, page))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("no Go page by go tool cover -html (run vmlab from inside the module that built the programs): %w: %s", err, bytes.TrimSpace(msg))
	}
	return page, nil
}

// cGenHTML writes the C and C++ files' merged counts (c/c.info) and
// genhtml's pages for them (c/index.html), when lcov's genhtml is
// installed. It returns the page's path relative to dir, "" when there is
// no C data.
func cGenHTML(ctx context.Context, dir string, m *Model) (string, error) {
	var files []*File
	for _, f := range m.Files {
		if f.Lang == "c" {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return "", nil
	}
	genhtml, err := exec.LookPath("genhtml")
	if err != nil {
		return "", errors.New("no C pages by genhtml: it is not installed (Debian package lcov)")
	}
	out := filepath.Join(dir, CHTMLDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	info := filepath.Join(out, cInfoFile)
	if err := os.WriteFile(info, writeLCOV(files, ""), 0o644); err != nil {
		return "", err
	}
	// --ignore-errors source: a source that is gone still gets its
	// counts, as on vmlab's own pages.
	cmd := exec.CommandContext(ctx, genhtml, "--quiet", "--ignore-errors", "source", "--title", "vmlab coverage (all machines)", "--output-directory", out, info)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("no C pages by genhtml: %w: %s", err, bytes.TrimSpace(msg))
	}
	return filepath.Join(CHTMLDir, IndexFile), nil
}
