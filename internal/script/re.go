package script

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// reModule is `re`: the part of Python's re that ported NixOS tests use,
// with Go's regular expression syntax (RE2: no backreferences or
// lookaround; flags inline, as (?i) or (?m)). sub's replacement takes
// Python's \1 and \g<name>.
var reModule = &starlarkstruct.Module{
	Name: "re",
	Members: starlark.StringDict{
		"match":     starlark.NewBuiltin("re.match", reFuncs["match"]),
		"fullmatch": starlark.NewBuiltin("re.fullmatch", reFuncs["fullmatch"]),
		"search":    starlark.NewBuiltin("re.search", reFuncs["search"]),
		"findall":   starlark.NewBuiltin("re.findall", reFuncs["findall"]),
		"sub":       starlark.NewBuiltin("re.sub", reFuncs["sub"]),
		"escape":    starlark.NewBuiltin("re.escape", reEscape),
		"compile":   starlark.NewBuiltin("re.compile", reCompile),
	},
}

// reFuncs are the functions a compiled pattern has as methods.
var reFuncs = map[string]builtinFunc{
	"match": reFind(`\A(?:%s)`), "fullmatch": reFind(`\A(?:%s)\z`), "search": reFind("%s"),
	"findall": reFindall, "sub": reSub,
}

// reCache holds the compiled patterns: tests poll with the same few
// patterns in loops (retry, wait), so each compiles once.
var reCache sync.Map // string -> *regexp.Regexp

func compile(fn, pattern string) (*regexp.Regexp, error) {
	if re, ok := reCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: compiling the pattern (Go's regexp syntax): %w", fn, err)
	}
	reCache.Store(pattern, re)
	return re, nil
}

// reFind is match, fullmatch or search: the pattern wrapped in wrap, the
// first match as a Match, or None.
func reFind(wrap string) builtinFunc {
	return func(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var pattern, s string
		if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "pattern", &pattern, "string", &s); err != nil {
			return nil, err
		}
		re, err := compile(b.Name(), fmt.Sprintf(wrap, pattern))
		if err != nil {
			return nil, err
		}
		loc := re.FindStringSubmatchIndex(s)
		if loc == nil {
			return starlark.None, nil
		}
		return &reMatch{re: re, s: s, loc: loc}, nil
	}
}

// reFindall is findall(pattern, string): every match; with one group the
// group's text, with several a tuple of them, as in Python.
func reFindall(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "pattern", &pattern, "string", &s); err != nil {
		return nil, err
	}
	re, err := compile(b.Name(), pattern)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		switch len(m) {
		case 1:
			out = append(out, starlark.String(m[0]))
		case 2:
			out = append(out, starlark.String(m[1]))
		default:
			t := make(starlark.Tuple, len(m)-1)
			for i, g := range m[1:] {
				t[i] = starlark.String(g)
			}
			out = append(out, t)
		}
	}
	return starlark.NewList(out), nil
}

// reSub is sub(pattern, repl, string, count=0): repl is a string with
// Python's \1 and \g<name>, or a function of the Match returning a string.
func reSub(thread *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	var repl starlark.Value
	count := 0
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "pattern", &pattern, "repl", &repl, "string", &s, "count?", &count); err != nil {
		return nil, err
	}
	re, err := compile(b.Name(), pattern)
	if err != nil {
		return nil, err
	}
	n := -1
	if count > 0 {
		n = count
	}
	var out strings.Builder
	last := 0
	for _, loc := range re.FindAllStringSubmatchIndex(s, n) {
		out.WriteString(s[last:loc[0]])
		text, err := replacement(thread, b.Name(), re, s, loc, repl)
		if err != nil {
			return nil, err
		}
		out.WriteString(text)
		last = loc[1]
	}
	out.WriteString(s[last:])
	return starlark.String(out.String()), nil
}

// replacement is what one match becomes.
func replacement(thread *starlark.Thread, fn string, re *regexp.Regexp, s string, loc []int, repl starlark.Value) (string, error) {
	switch r := repl.(type) {
	case starlark.String:
		return string(re.ExpandString(nil, goTemplate(string(r)), s, loc)), nil
	case starlark.Callable:
		v, err := starlark.Call(thread, r, starlark.Tuple{&reMatch{re: re, s: s, loc: loc}}, nil)
		if err != nil {
			return "", err
		}
		text, ok := starlark.AsString(v)
		if !ok {
			return "", fmt.Errorf("%s: repl returned %s, want a string", fn, v.Type())
		}
		return text, nil
	}
	return "", fmt.Errorf("%s: repl wants a string or a function, got %s", fn, repl.Type())
}

// pyGroupRef is a Python group reference in a replacement: \1 or \g<x>.
var pyGroupRef = regexp.MustCompile(`\\(\d+)|\\g<(\w+)>|\\\\|\$`)

// goTemplate turns a Python replacement into Go's Expand template:
// \1 and \g<name> become ${1} and ${name}, \\ a backslash, $ a literal $.
func goTemplate(repl string) string {
	return pyGroupRef.ReplaceAllStringFunc(repl, func(ref string) string {
		switch {
		case ref == `\\`:
			return `\`
		case ref == "$":
			return "$$"
		case strings.HasPrefix(ref, `\g<`):
			return "${" + ref[3:len(ref)-1] + "}"
		}
		return "${" + ref[1:] + "}"
	})
}

func reEscape(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "string", &s); err != nil {
		return nil, err
	}
	return starlark.String(regexp.QuoteMeta(s)), nil
}

// reMatch is a match, as Python's Match: group(), groups(), start(),
// end(), span().
type reMatch struct {
	re  *regexp.Regexp
	s   string
	loc []int // FindStringSubmatchIndex's
}

var _ starlark.HasAttrs = (*reMatch)(nil)

func (m *reMatch) String() string {
	return fmt.Sprintf("<re.Match span=(%d, %d) match=%q>", m.loc[0], m.loc[1], m.s[m.loc[0]:m.loc[1]])
}
func (m *reMatch) Type() string          { return "re.Match" }
func (m *reMatch) Freeze()               {}
func (m *reMatch) Truth() starlark.Bool  { return true }
func (m *reMatch) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: re.Match") }
func (m *reMatch) AttrNames() []string   { return []string{"end", "group", "groups", "span", "start"} }

func (m *reMatch) Attr(name string) (starlark.Value, error) {
	var fn builtinFunc
	switch name {
	case "group":
		fn = m.group
	case "groups":
		fn = m.groups
	case "start", "end", "span":
		fn = m.position
	default:
		return nil, nil
	}
	return starlark.NewBuiltin(name, fn), nil
}

// index is the number of a group given by number or name.
func (m *reMatch) index(fn string, g starlark.Value) (int, error) {
	switch g := g.(type) {
	case starlark.String:
		if i := m.re.SubexpIndex(string(g)); i >= 0 {
			return i, nil
		}
	case starlark.Int:
		if i, ok := g.Int64(); ok && i >= 0 && int(i) <= m.re.NumSubexp() {
			return int(i), nil
		}
	}
	return 0, fmt.Errorf("%s: no group %s (the pattern has %d)", fn, g.String(), m.re.NumSubexp())
}

// text is group i's text, or None when it did not take part.
func (m *reMatch) text(i int) starlark.Value {
	if m.loc[2*i] < 0 {
		return starlark.None
	}
	return starlark.String(m.s[m.loc[2*i]:m.loc[2*i+1]])
}

func (m *reMatch) group(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("group: takes no keyword arguments")
	}
	if len(argv) == 0 {
		argv = starlark.Tuple{starlark.MakeInt(0)}
	}
	out := make(starlark.Tuple, len(argv))
	for i, g := range argv {
		n, err := m.index(b.Name(), g)
		if err != nil {
			return nil, err
		}
		out[i] = m.text(n)
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

func (m *reMatch) groups(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	def := starlark.Value(starlark.None)
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "default?", &def); err != nil {
		return nil, err
	}
	out := make(starlark.Tuple, m.re.NumSubexp())
	for i := range out {
		if out[i] = m.text(i + 1); out[i] == starlark.None {
			out[i] = def
		}
	}
	return out, nil
}

// position is start(g=0), end(g=0) and span(g=0); -1 for a group that did
// not take part, as in Python.
func (m *reMatch) position(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	g := starlark.Value(starlark.MakeInt(0))
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "group?", &g); err != nil {
		return nil, err
	}
	i, err := m.index(b.Name(), g)
	if err != nil {
		return nil, err
	}
	start, end := starlark.MakeInt(m.loc[2*i]), starlark.MakeInt(m.loc[2*i+1])
	switch b.Name() {
	case "start":
		return start, nil
	case "end":
		return end, nil
	}
	return starlark.Tuple{start, end}, nil
}

// rePattern is re.compile's pattern: its methods are the module's
// functions with the pattern given (the regexp is compiled, and cached,
// at the first call; compile checks it at once).
type rePattern struct{ pattern string }

var _ starlark.HasAttrs = (*rePattern)(nil)

func reCompile(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern string
	if err := starlark.UnpackArgs(b.Name(), argv, kwargs, "pattern", &pattern); err != nil {
		return nil, err
	}
	if _, err := compile(b.Name(), pattern); err != nil {
		return nil, err
	}
	return &rePattern{pattern}, nil
}

func (p *rePattern) String() string        { return fmt.Sprintf("re.compile(%q)", p.pattern) }
func (p *rePattern) Type() string          { return "re.Pattern" }
func (p *rePattern) Freeze()               {}
func (p *rePattern) Truth() starlark.Bool  { return true }
func (p *rePattern) Hash() (uint32, error) { return starlark.String(p.pattern).Hash() }
func (p *rePattern) AttrNames() []string {
	return []string{"findall", "fullmatch", "match", "pattern", "search", "sub"}
}

func (p *rePattern) Attr(name string) (starlark.Value, error) {
	if name == "pattern" {
		return starlark.String(p.pattern), nil
	}
	fn := reFuncs[name]
	if fn == nil {
		return nil, nil
	}
	return starlark.NewBuiltin("re.Pattern."+name, func(thread *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return fn(thread, b, append(starlark.Tuple{starlark.String(p.pattern)}, argv...), kwargs)
	}), nil
}
