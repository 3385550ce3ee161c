package coverage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// goBlock is one counted block of a Go text profile, the unit Go's own
// tools work in (go tool cover -html): file, start and end line and
// column, statements, count.
type goBlock struct {
	File                   string
	StartLine, StartCol    int
	EndLine, EndCol, Stmts int
}

// goData is what the Go readers add to the model besides lines: the
// blocks, merged over every run, for go tool cover.
type goData struct {
	mode   string // "set" when every run counted in set mode, else "count"
	blocks map[goBlock]int64
	// pkgs maps each package path to its meta-data hashes and the runs
	// that carried each, to find different builds of one package.
	pkgs map[string]map[string][]*Run
	// found holds the files whose source resolveGo found and read: the
	// only ones go tool cover is given.
	found map[string]bool
	// funcs holds each file's functions as the build recorded them, file
	// names as the profile has them; filePkg the package of each file,
	// programs the main packages of the programs that held each package.
	funcs    map[string][]goFuncMeta
	filePkg  map[string]string
	programs map[string][]string
	// refused says, per package, why its files were left out of the
	// report: the source changed since the build.
	refused []string
}

// goTool is the go command, or an error naming what to install.
func goTool() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH: install Go (https://go.dev/dl) to merge Go coverage")
	}
	return p, nil
}

// readGo reads the Go data of every run that has some into b. Each
// run's data is turned into a text profile by its own go tool covdata
// (about 200 ms each, mostly the go command starting), NumCPU at a time.
func readGo(ctx context.Context, b *builder, tmp string) (*goData, error) {
	gd := &goData{mode: "set", blocks: map[goBlock]int64{}, pkgs: map[string]map[string][]*Run{}, found: map[string]bool{},
		funcs: map[string][]goFuncMeta{}, filePkg: map[string]string{}, programs: map[string][]string{}}
	var runs []*Run
	for _, r := range b.runs {
		if r.HasGo {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return gd, nil
	}
	goCmd, err := goTool()
	if err != nil {
		return nil, fmt.Errorf("reading Go coverage data of %s in test %s: %w", runs[0].Machine, runs[0].Test, err)
	}
	for _, r := range runs {
		if err := gd.readMeta(r); err != nil {
			return nil, err
		}
	}
	if err := gd.conflicts(); err != nil {
		return nil, err
	}
	profiles := make([]string, len(runs))
	errs := make([]error, len(runs))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, r := range runs {
		profiles[i] = filepath.Join(tmp, fmt.Sprintf("go-%d.txt", i))
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.CommandContext(ctx, goCmd, "tool", "covdata", "textfmt", "-i="+GuestData(r.dir, GoDir), "-o="+profiles[i])
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("reading Go coverage data of %s in test %s: go tool covdata textfmt: %w: %s", r.Machine, r.Test, err, bytes.TrimSpace(out))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, r := range runs {
		if err := gd.readProfile(b, r, profiles[i]); err != nil {
			return nil, fmt.Errorf("reading Go coverage data of %s in test %s: %w", r.Machine, r.Test, err)
		}
	}
	return gd, nil
}

// readMeta records the packages of r's meta-data files, and marks r
// partial when no run of a program wrote counters (at exit) beside its
// meta-data (written at start, once per binary): Go's files do not say
// how many processes started, so one killed run among runs that exited
// is not seen.
func (gd *goData) readMeta(r *Run) error {
	metas, _ := filepath.Glob(filepath.Join(GuestData(r.dir, GoDir), "covmeta.*"))
	for _, m := range metas {
		pkgs, err := readGoMeta(m)
		if err != nil {
			return fmt.Errorf("reading Go coverage data of %s in test %s: %w", r.Machine, r.Test, err)
		}
		var program string
		for _, p := range pkgs {
			if p.Name == "main" {
				program = p.Path
			}
		}
		for _, p := range pkgs {
			if err := checkGoPackage(p); err != nil {
				return fmt.Errorf("reading Go coverage data of %s in test %s: %s: %w", r.Machine, r.Test, m, err)
			}
			if program != "" && !slices.Contains(gd.programs[p.Path], program) {
				gd.programs[p.Path] = append(gd.programs[p.Path], program)
			}
			if gd.pkgs[p.Path] == nil {
				gd.pkgs[p.Path] = map[string][]*Run{}
			}
			if len(gd.pkgs[p.Path][p.Hash]) == 0 {
				// One build of a package (conflicts refuses two): its
				// functions once.
				for _, fn := range p.Funcs {
					gd.funcs[fn.File] = append(gd.funcs[fn.File], fn)
					gd.filePkg[fn.File] = p.Path
				}
			}
			if !slices.Contains(gd.pkgs[p.Path][p.Hash], r) {
				gd.pkgs[p.Path][p.Hash] = append(gd.pkgs[p.Path][p.Hash], r)
			}
		}
		hash := strings.TrimPrefix(filepath.Base(m), "covmeta.")
		counters, _ := filepath.Glob(filepath.Join(GuestData(r.dir, GoDir), "covcounters."+hash+".*"))
		if len(counters) == 0 {
			r.Partial = true
			r.Reasons = append(r.Reasons, "no run of a Go program wrote counters (none exited: killed, or still running when the test ended)")
		}
	}
	return nil
}

// conflicts reports every package that two runs (or two programs of one
// run) carried from different builds.
func (gd *goData) conflicts() error {
	var errs []error
	for _, pkg := range sortedKeys(gd.pkgs) {
		hashes := gd.pkgs[pkg]
		if len(hashes) < 2 {
			continue
		}
		var builds []string
		for _, h := range sortedKeys(hashes) {
			var where []string
			for _, r := range hashes[h] {
				where = append(where, r.Machine+" in "+r.Test)
			}
			builds = append(builds, fmt.Sprintf("build %s on %s", h[:8], strings.Join(where, ", ")))
		}
		errs = append(errs, fmt.Errorf("merging Go coverage of package %s: the machines ran different builds of it (%s): not merged; rebuild the programs from one source tree and run again", pkg, strings.Join(builds, "; ")))
	}
	return errors.Join(errs...)
}

// readProfile reads a text profile (go tool covdata textfmt) of run r.
func (gd *goData) readProfile(b *builder, r *Run, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for first := true; sc.Scan(); first = false {
		line := sc.Text()
		if first {
			if mode, ok := strings.CutPrefix(line, "mode: "); ok {
				if mode != "set" {
					gd.mode = "count"
				}
				continue
			}
			return fmt.Errorf("%s: no mode line", name)
		}
		blk, count, err := parseGoBlock(line)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := checkGoName(blk.File); err != nil {
			return err
		}
		gd.blocks[blk] += count
		fb := b.file(blk.File, "go")
		for n := blk.StartLine; n <= blk.EndLine; n++ {
			fb.line(r, n, count, true)
		}
	}
	return sc.Err()
}

// parseGoBlock parses "file:l0.c0,l1.c1 stmts count".
func parseGoBlock(line string) (goBlock, int64, error) {
	bad := fmt.Errorf("bad profile line %q", line)
	i := strings.LastIndexByte(line, ':')
	if i < 0 {
		return goBlock{}, 0, bad
	}
	var blk goBlock
	var count int64
	blk.File = line[:i]
	if _, err := fmt.Sscanf(line[i+1:], "%d.%d,%d.%d %d %d", &blk.StartLine, &blk.StartCol, &blk.EndLine, &blk.EndCol, &blk.Stmts, &count); err != nil {
		return goBlock{}, 0, bad
	}
	if blk.EndLine < blk.StartLine {
		return goBlock{}, 0, bad
	}
	return blk, count, nil
}

// writeProfile writes the blocks of the files keep accepts, counts summed
// over every run, as a Go text profile.
func (gd *goData) writeProfile(name string, keep func(file string) bool) error {
	blocks := sortedKeysFunc(gd.blocks, func(a, b goBlock) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		if a.StartLine != b.StartLine {
			return a.StartLine - b.StartLine
		}
		return a.StartCol - b.StartCol
	})
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "mode: %s\n", gd.mode)
	for _, blk := range blocks {
		if !keep(blk.File) {
			continue
		}
		n := gd.blocks[blk]
		if gd.mode == "set" {
			n = min(n, 1)
		}
		fmt.Fprintf(&buf, "%s:%d.%d,%d.%d %d %d\n", blk.File, blk.StartLine, blk.StartCol, blk.EndLine, blk.EndCol, blk.Stmts, n)
	}
	return os.WriteFile(name, buf.Bytes(), 0o644)
}

// resolveGo finds the Go files' sources with go list, from the current
// directory (the module that built the programs, where go tool cover
// looks too), then drops lines that hold no code (blank, comment, a lone
// closing brace: a block's range covers them, gcov does not count them)
// and adds the functions.
//
// The names come from the guest: a source is read only when it is a
// regular .go file, not a link, in the directory go list gave for its
// package or, for an absolute name, under the current module's root;
// anything else is "source not found", as a file outside the module.
//
// A package whose source no longer matches its build (checkGoSource) is
// left out of the report, every file of it, and gd.refused says why.
func resolveGo(ctx context.Context, b *builder, gd *goData, logf func(string, ...any)) {
	dirs := goPackageDirs(ctx, b, logf)
	root := moduleRoot()
	changed := map[string][]string{} // package → what differs
	for _, name := range sortedKeys(b.files) {
		f := b.files[name]
		if f.Lang != "go" {
			continue
		}
		var src string
		if filepath.IsAbs(name) {
			if root == "" || !strings.HasPrefix(name, root+string(filepath.Separator)) {
				logf("coverage: no source for %s: it is outside the module of the current directory", name)
				continue
			}
			src = name
		} else {
			dir, ok := dirs[path.Dir(name)]
			if !ok {
				continue
			}
			src = filepath.Join(dir, path.Base(name))
		}
		text, err := ReadNoFollow(src, maxGuestFile)
		if err != nil {
			logf("coverage: source of %s: %v", name, err)
			continue
		}
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, src, text, parser.SkipObjectResolution)
		if err != nil {
			// The build compiled it: a source that does not parse is not
			// the one it was built from.
			changed[gd.filePkg[name]] = append(changed[gd.filePkg[name]], fmt.Sprintf("%s does not parse: %v", src, err))
			continue
		}
		if diffs := checkGoSource(fset, af, text, gd.funcs[name]); len(diffs) > 0 {
			const maxDiffs = 3
			if len(diffs) > maxDiffs {
				diffs = append(diffs[:maxDiffs:maxDiffs], fmt.Sprintf("%d more", len(diffs)-maxDiffs))
			}
			changed[gd.filePkg[name]] = append(changed[gd.filePkg[name]], src+": "+strings.Join(diffs, ", "))
			continue
		}
		f.Source = src
		gd.found[name] = true
		dropBlankGoLines(f, text)
		addGoFuncs(f, fset, af)
	}
	for _, pkg := range sortedKeys(changed) {
		gd.refuse(b, pkg, changed[pkg])
	}
}

// refuse leaves package pkg out of the report: its source is not the one
// its programs were built from, so its lines would be another build's.
func (gd *goData) refuse(b *builder, pkg string, diffs []string) {
	for name := range b.files {
		if gd.filePkg[name] == pkg {
			delete(b.files, name)
			delete(gd.found, name)
		}
	}
	maps.DeleteFunc(gd.blocks, func(blk goBlock, _ int64) bool { return gd.filePkg[blk.File] == pkg })
	var where []string
	for _, runs := range gd.pkgs[pkg] {
		for _, r := range runs {
			where = append(where, r.Machine+" in "+r.Test)
		}
	}
	slices.Sort(where)
	program := ""
	if progs := gd.programs[pkg]; len(progs) > 0 && !slices.Equal(progs, []string{pkg}) {
		program = " of program " + strings.Join(progs, ", ")
	}
	const maxFiles = 3
	if len(diffs) > maxFiles {
		diffs = append(diffs[:maxFiles:maxFiles], fmt.Sprintf("%d more files", len(diffs)-maxFiles))
	}
	gd.refused = append(gd.refused, fmt.Sprintf("Go package %s%s (run on %s) not reported: its source changed since the program was built, so its counts would land on other lines (%s); rebuild it with -cover and run again",
		pkg, program, strings.Join(where, ", "), strings.Join(diffs, "; ")))
}

// moduleRoot is the directory of the go.mod at or above the current
// directory, "" when there is none.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && st.Mode().IsRegular() {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// goPackageDirs maps the import paths of the Go files to their
// directories.
func goPackageDirs(ctx context.Context, b *builder, logf func(string, ...any)) map[string]string {
	var pkgs []string
	for name, f := range b.files {
		if f.Lang == "go" && !filepath.IsAbs(name) && !slices.Contains(pkgs, path.Dir(name)) {
			pkgs = append(pkgs, path.Dir(name))
		}
	}
	dirs := map[string]string{}
	if len(pkgs) == 0 {
		return dirs
	}
	goCmd, err := goTool()
	if err != nil {
		return dirs
	}
	slices.Sort(pkgs)
	// "--": nothing after it is a flag, whatever checkGoName let by.
	args := append([]string{"list", "-e", "-f", "{{.ImportPath}}\t{{.Dir}}", "--"}, pkgs...)
	out, err := exec.CommandContext(ctx, goCmd, args...).Output()
	if err != nil {
		logf("coverage: finding the Go sources (go list from the current directory): %v", err)
		return dirs
	}
	for line := range strings.Lines(string(out)) {
		pkg, dir, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && dir != "" {
			dirs[pkg] = dir
		}
	}
	for _, p := range pkgs {
		if dirs[p] == "" {
			logf("coverage: no source for Go package %s: run vmlab from inside the module that built it", p)
		}
	}
	return dirs
}

func dropBlankGoLines(f *fileBuilder, text []byte) {
	lines := strings.Split(string(text), "\n")
	for n := range f.lines {
		if n < 1 || n > len(lines) {
			continue
		}
		t := strings.TrimSpace(lines[n-1])
		if t == "" || t == "}" || strings.HasPrefix(t, "//") {
			delete(f.lines, n)
		}
	}
}

// addGoFuncs adds the file's function declarations; each is entered as
// often as its first instrumented line ran (the block that opens its body).
func addGoFuncs(f *fileBuilder, fset *token.FileSet, af *ast.File) {
	for _, d := range af.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		var first *Line
		for n := start; n <= end && first == nil; n++ {
			first = f.lines[n]
		}
		if first == nil {
			continue
		}
		fn := f.fn(goFuncName(fd), start, end)
		for r, h := range first.Hits {
			fn.Hits[r] = h
		}
	}
}

// goFuncName is the name go tool cover -func shows: Name, T.Name or
// (*T).Name.
func goFuncName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	star := false
	if s, ok := t.(*ast.StarExpr); ok {
		t, star = s.X, true
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	name := "?"
	if id, ok := t.(*ast.Ident); ok {
		name = id.Name
	}
	if star {
		return "(*" + name + ")." + fd.Name.Name
	}
	return name + "." + fd.Name.Name
}
