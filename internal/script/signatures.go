package script

import (
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/near"
)

// args holds the unpacked arguments of a call, one field per parameter;
// each param says which field is its own.
type args struct {
	// machine methods
	commands                   []string
	command, path, addr, regex string
	unit, source, target       string
	targetDir                  string
	q, user, property          string // the unit methods'
	requireState               string
	checkReturn, isDatagram    bool
	timeout, seconds           time.Duration
	port, hostPort, guestPort  int
	vlans                      []int
	tty                        int
	keyDelay                   time.Duration // send_key's and send_chars' pause after each key
	log                        bool          // send_key's: the call is a step of the timeline
	// top-level functions
	name, message            string
	fn, condition, body      starlark.Callable
	interval, retryTimeout   time.Duration
	groups                   [][]string
	sender, receiver         *machineValue
	vlan, rate               int
	delay, jitter            time.Duration
	loss, duplicate, reorder float64
	first, second            starlark.Value // the assertions' operands
	msg                      string
}

// param is one parameter of a signature: its name, what it accepts, its
// default (nil: the argument is required) and where its value goes.
type param struct {
	name string
	kind *kind
	def  starlark.Value
	// into points at the field of args that receives the unpacked value;
	// a variadic parameter's field is a slice its values are appended to.
	into func(*args) any
}

// signature is a callable's parameters. Without variadic, params take
// positional or keyword arguments, in order; with variadic, it takes every
// positional argument (at least atLeast of them) and params are keywords
// only, as in Python's f(*commands, timeout=None).
type signature struct {
	name     string
	params   []param
	variadic *param
	atLeast  int
	// valid, if set, checks what no single parameter can (a fault's jitter
	// against its delay); known says which values it may trust: at load
	// time only literals and defaults are known.
	valid func(a *args, known func(name string) bool) error
}

// sig is a signature with the given parameters.
func sig(name string, params ...param) signature { return signature{name: name, params: params} }

// rest makes s take any number of positional arguments of p's kind, at
// least atLeast.
func (s signature) rest(p param, atLeast int) signature {
	s.variadic, s.atLeast = &p, atLeast
	return s
}

// String renders s as the docs write it: wait_for_open_port(port,
// addr="localhost", timeout=None).
func (s signature) String() string {
	var parts []string
	if s.variadic != nil {
		parts = append(parts, "*"+s.variadic.name)
	}
	for _, p := range s.params {
		if p.def == nil {
			parts = append(parts, p.name)
		} else {
			parts = append(parts, p.name+"="+p.def.String())
		}
	}
	return s.name + "(" + strings.Join(parts, ", ") + ")"
}

// argument is one argument of a call: its keyword (empty when positional),
// its value (nil when Load cannot know it before the call runs), and where
// the script wrote the name and the value (zero at run time).
type argument struct {
	name              string
	value             starlark.Value
	namePos, valuePos syntax.Position
}

// argError is a refused argument and where the script wrote it.
type argError struct {
	pos syntax.Position
	err error
}

// bind matches a call's arguments to s's parameters and unpacks each known
// value into a, with defaults for what the call leaves out. It reports
// every mistake; callPos is where missing arguments are reported. open
// says the call passes *args or **kwargs, so Load cannot tell what is
// missing.
func (s *signature) bind(argv []argument, open bool, callPos syntax.Position, base string, a *args) []argError {
	b := &binder{s: s, given: make([]bool, len(s.params)), known: make(map[string]bool)}
	for _, arg := range argv {
		p, label := b.match(arg)
		if p == nil {
			continue
		}
		if err := set(p, p == s.variadic, arg.value, base, a); err != nil {
			b.refuse(arg.valuePos, "(): %s %v", label, err)
		} else if arg.value != nil {
			b.known[p.name] = true
		}
	}
	for i, p := range s.params {
		switch {
		case b.given[i]:
		case p.def != nil:
			_ = set(&s.params[i], false, p.def, base, a) // defaults are valid: TestMethodTable
			b.known[p.name] = true
		case !open:
			b.refuse(callPos, "() is missing required argument %s", p.name)
		}
	}
	if s.variadic != nil && b.n < s.atLeast && !open {
		b.refuse(callPos, "() wants at least %d *%s", s.atLeast, s.variadic.name)
	}
	if s.valid != nil && len(b.errs) == 0 {
		if err := s.valid(a, func(name string) bool { return b.known[name] }); err != nil {
			b.refuse(callPos, "(): %v", err)
		}
	}
	return b.errs
}

// binder is the state of one bind: which parameters have values, how many
// positional arguments came, and the mistakes so far.
type binder struct {
	s     *signature
	given []bool
	known map[string]bool // parameters whose values are known and valid
	n     int
	errs  []argError
}

func (b *binder) refuse(pos syntax.Position, format string, v ...any) {
	err := fmt.Errorf("%s"+format, append([]any{b.s.name}, v...)...)
	b.errs = append(b.errs, argError{pos, err})
}

// match returns the parameter an argument is for and how errors name it
// ("timeout", "commands[1]"), or nil after refusing the argument.
func (b *binder) match(arg argument) (*param, string) {
	s := b.s
	if arg.name == "" {
		b.n++
		switch {
		case s.variadic != nil:
			return s.variadic, fmt.Sprintf("%s[%d]", s.variadic.name, b.n-1)
		case b.n <= len(s.params):
			b.given[b.n-1] = true
			return &s.params[b.n-1], s.params[b.n-1].name
		case len(s.params) == 0:
			b.refuse(arg.valuePos, "() takes no positional arguments")
		default:
			b.refuse(arg.valuePos, "() takes at most %d positional arguments", len(s.params))
		}
		return nil, ""
	}
	switch i := s.index(arg.name); {
	case i < 0:
		b.refuse(arg.namePos, "() has no parameter %q%s", arg.name, near.Hint(arg.name, s.names()))
	case b.given[i]:
		b.refuse(arg.namePos, "() got two values for %s", arg.name)
	default:
		b.given[i] = true
		return &s.params[i], arg.name
	}
	return nil, ""
}

// index returns the index of the parameter called name, or -1.
func (s *signature) index(name string) int {
	return slices.IndexFunc(s.params, func(p param) bool { return p.name == name })
}

func (s *signature) names() []string {
	var names []string
	for _, p := range s.params {
		names = append(names, p.name)
	}
	return names
}

// set unpacks v with p's kind into p's field of a; a nil v (not known
// before run time) is left alone. A variadic parameter's field is a slice
// each value is appended to.
func set(p *param, variadic bool, v starlark.Value, base string, a *args) error {
	if v == nil {
		return nil
	}
	x, err := p.kind.unpack(v, base)
	if err != nil {
		return err
	}
	// The field has x's type (or is a slice of it): TestMethodTable and
	// TestFunctionTable unpack every parameter, so a mismatch fails there,
	// not in a script.
	dst := reflect.ValueOf(p.into(a)).Elem()
	if variadic {
		dst.Set(reflect.Append(dst, reflect.ValueOf(x)))
	} else {
		dst.Set(reflect.ValueOf(x))
	}
	return nil
}

// unpack is bind at run time: every value is known and the first mistake
// is the call's error.
func (s *signature) unpack(args starlark.Tuple, kwargs []starlark.Tuple, base string, a *args) error {
	argv := make([]argument, 0, len(args)+len(kwargs))
	for _, v := range args {
		argv = append(argv, argument{value: v})
	}
	for _, kv := range kwargs {
		argv = append(argv, argument{name: string(kv[0].(starlark.String)), value: kv[1]})
	}
	if errs := s.bind(argv, false, syntax.Position{}, base, a); len(errs) > 0 {
		return errs[0].err
	}
	return nil
}

// check is bind at load time: the arguments the script wrote as literals
// are unpacked as the call would unpack them, the others only counted.
// Every mistake is an error at its file:line:col.
func (s *signature) check(call *syntax.CallExpr, callPos syntax.Position, base string) []error {
	var argv []argument
	open := false
	for _, e := range call.Args {
		switch e := e.(type) {
		case *syntax.UnaryExpr:
			if e.Op == syntax.STAR || e.Op == syntax.STARSTAR {
				open = true
				continue
			}
		case *syntax.BinaryExpr:
			if e.Op == syntax.EQ {
				id := e.X.(*syntax.Ident)
				argv = append(argv, argument{name: id.Name, value: literal(e.Y), namePos: id.NamePos, valuePos: start(e.Y)})
				continue
			}
		}
		argv = append(argv, argument{value: literal(e), valuePos: start(e)})
	}
	var errs []error
	for _, e := range s.bind(argv, open, callPos, base, &args{}) {
		errs = append(errs, fmt.Errorf("%s: %w", e.pos, e.err))
	}
	return errs
}

func start(e syntax.Expr) syntax.Position {
	p, _ := e.Span()
	return p
}

// literal returns the value of a literal expression: a string, a number
// (with its sign: -1 is a unary minus on 1), True, False, None, or a list
// of these. Other
// expressions are known only when the call runs: nil.
func literal(e syntax.Expr) starlark.Value {
	switch e := e.(type) {
	case *syntax.Literal:
		switch v := e.Value.(type) {
		case string:
			if e.Token == syntax.BYTES {
				return starlark.Bytes(v)
			}
			return starlark.String(v)
		case int64:
			return starlark.MakeInt64(v)
		case *big.Int:
			return starlark.MakeBigInt(v)
		case float64:
			return starlark.Float(v)
		}
	case *syntax.ParenExpr:
		return literal(e.X)
	case *syntax.ListExpr:
		// A list of literals, such as partition's [1]: its elements' types
		// are known.
		var elems []starlark.Value
		for _, x := range e.List {
			v := literal(x)
			if v == nil {
				return nil
			}
			elems = append(elems, v)
		}
		return starlark.NewList(elems)
	case *syntax.UnaryExpr:
		x := literal(e.X)
		if e.Op != syntax.MINUS && e.Op != syntax.PLUS || x == nil {
			return nil
		}
		if v, err := starlark.Unary(e.Op, x); err == nil {
			return v
		}
	case *syntax.Ident:
		// True, False and None unless the file binds the name itself.
		if b, ok := e.Binding.(*resolve.Binding); !ok || b.Scope != resolve.Universal {
			return nil
		}
		switch e.Name {
		case "True":
			return starlark.True
		case "False":
			return starlark.False
		case "None":
			return starlark.None
		}
	}
	return nil
}
