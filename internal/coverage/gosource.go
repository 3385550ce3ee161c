package coverage

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/token"
)

// The Go data's line numbers are those of the source the program was
// built from; the report reads today's source. When the source changed
// since the build (a function added above another, without rebuilding),
// the counts land on other lines and other functions: go tool covdata
// does not read the source and go tool cover trusts it. So every file's
// functions, as the build's meta-data lists them, are checked against
// the source before its lines are reported: the same functions by name,
// each within its declaration in the source, and every counted unit
// starting and ending where cmd/cover puts a counter's bounds (a
// statement's or a block's start or end, after a brace, a case's colon
// or an else). An edit that keeps every function's name and every
// unit's bounds in place (a changed constant, a renamed variable of the
// same length) is not seen, and does not move a count to another line.

// lineCol is a position as the meta-data holds it.
type lineCol struct{ Line, Col int }

func (a lineCol) less(b lineCol) bool {
	return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
}

// goSourceFunc is a function cmd/cover would instrument in the source:
// a declaration with a body, or a function literal outside any function.
type goSourceFunc struct {
	name       string
	start, end lineCol
	// body is where its first counter starts: the body's opening brace,
	// just after it for an empty body.
	body [2]lineCol
	used bool
}

// checkGoSource compares the functions the build recorded for one file
// (funcs) with the file's source as parsed (af, text), and returns what
// differs, nil when nothing does.
func checkGoSource(fset *token.FileSet, af *ast.File, text []byte, funcs []goFuncMeta) []string {
	tf := fset.File(af.Pos())
	pos := func(p token.Pos) lineCol {
		ps := fset.Position(p)
		return lineCol{ps.Line, ps.Column}
	}
	// Where cmd/cover's counters may start and end (its addCounters and
	// statementBoundary): a unit starts at a statement, at a block's
	// opening brace or just after it (an empty block), after a case's
	// colon or an else, or at a function (one counter per function); it
	// ends at the end of any node, at a block's opening brace (where a
	// control statement's basic block stops) or at a label.
	starts, ends := map[lineCol]bool{}, map[lineCol]bool{}
	add := func(set map[lineCol]bool, p token.Pos) {
		if p.IsValid() && int(p) <= tf.Base()+tf.Size() {
			set[pos(p)] = true
		}
	}
	ast.Inspect(af, func(n ast.Node) bool {
		if n == nil {
			return false
		}
		add(ends, n.End())
		switch x := n.(type) {
		case ast.Stmt:
			add(starts, x.Pos())
		case *ast.FuncDecl:
			add(starts, x.Pos())
		}
		switch x := n.(type) {
		case *ast.BlockStmt:
			add(starts, x.Lbrace+1)
			add(ends, x.Lbrace)
		case *ast.LabeledStmt:
			add(ends, x.Pos())
		case *ast.CaseClause:
			add(starts, x.Colon+1)
		case *ast.CommClause:
			add(starts, x.Colon+1)
		case *ast.IfStmt:
			if x.Else != nil {
				off := tf.Offset(x.Body.End())
				if i := bytes.Index(text[off:], []byte("else")); i >= 0 {
					add(starts, tf.Pos(off+i+len("else")))
				}
			}
		}
		return true
	})
	var src []*goSourceFunc
	for _, d := range af.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			if fd.Body != nil && fd.Name.Name != "_" {
				src = append(src, &goSourceFunc{name: coverFuncName(fd), start: pos(fd.Pos()), end: pos(fd.End()),
					body: [2]lineCol{pos(fd.Body.Lbrace), pos(fd.Body.Lbrace + 1)}})
			}
			continue
		}
		// cmd/cover counts a function literal outside any function (a
		// package variable's) as a function of its own, named by its
		// position; one inside another literal is part of that one.
		ast.Inspect(d, func(n ast.Node) bool {
			lit, ok := n.(*ast.FuncLit)
			if !ok {
				return true
			}
			p := pos(lit.Pos())
			src = append(src, &goSourceFunc{name: fmt.Sprintf("func.L%d.C%d", p.Line, p.Col), start: p, end: pos(lit.End()),
				body: [2]lineCol{pos(lit.Body.Lbrace), pos(lit.Body.Lbrace + 1)}})
			return false
		})
	}
	var diffs []string
	for _, fn := range funcs {
		if len(fn.Units) == 0 {
			continue
		}
		first, last := lineCol{fn.Units[0].StartLine, fn.Units[0].StartCol}, lineCol{fn.Units[0].EndLine, fn.Units[0].EndCol}
		for _, u := range fn.Units {
			if s := (lineCol{u.StartLine, u.StartCol}); s.less(first) {
				first = s
			}
			if e := (lineCol{u.EndLine, u.EndCol}); last.less(e) {
				last = e
			}
		}
		var named, match *goSourceFunc
		for _, s := range src {
			if s.name != fn.Name || s.used {
				continue
			}
			named = s
			// The first counter at the body's brace (at the function
			// itself when the build counted per function), none past
			// its end.
			if (first == s.body[0] || first == s.body[1] || first == s.start) && !s.end.less(last) {
				match = s
				break
			}
		}
		switch {
		case named == nil:
			diffs = append(diffs, fmt.Sprintf("function %s (lines %d-%d in the build) is not in the source", fn.Name, first.Line, last.Line))
			continue
		case match == nil:
			diffs = append(diffs, fmt.Sprintf("function %s is at lines %d-%d in the source, the build counted lines %d-%d", fn.Name, named.start.Line, named.end.Line, first.Line, last.Line))
			named.used = true
			continue
		}
		match.used = true
		for _, u := range fn.Units {
			s, e := lineCol{u.StartLine, u.StartCol}, lineCol{u.EndLine, u.EndCol}
			if !starts[s] || !ends[e] {
				diffs = append(diffs, fmt.Sprintf("function %s: the build counted %d.%d-%d.%d, which are not a statement's or a block's bounds in the source", fn.Name, s.Line, s.Col, e.Line, e.Col))
				break
			}
		}
	}
	// Functions only one side has first: they say most plainly what
	// changed.
	var added []string
	for _, s := range src {
		if !s.used {
			added = append(added, fmt.Sprintf("function %s (line %d) is not in the build", s.name, s.start.Line))
		}
	}
	return append(added, diffs...)
}

// coverFuncName is the name cmd/cover records for a declared function: F,
// T.M or *T.M; a method of a generic type is recorded by its own name.
func coverFuncName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) != 1 {
		return fd.Name.Name
	}
	t, star := fd.Recv.List[0].Type, ""
	if p, ok := t.(*ast.StarExpr); ok {
		t, star = p.X, "*"
	}
	if id, ok := t.(*ast.Ident); ok {
		return star + id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
