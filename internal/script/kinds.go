package script

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
)

// kind is what a parameter accepts. Its unpack turns a Starlark value into
// the Go value an implementation receives, or says why it cannot ("wants
// ..., got ..."). Load runs it on literal arguments and a call runs it on
// every argument, so both refuse a value with the same words.
type kind struct {
	want string // "a port number 1..65535", in errors
	// conv converts v; base is the test file's directory, against which
	// relative host paths resolve.
	conv func(k *kind, v starlark.Value, base string) (any, error)
}

func (k *kind) unpack(v starlark.Value, base string) (any, error) { return k.conv(k, v, base) }

// wrong is a kind's refusal of v. Values of the right type but out of range
// are shown; values of the wrong type are named by their type.
func (k *kind) wrong(v starlark.Value, show bool) error {
	if show {
		return fmt.Errorf("wants %s, got %s", k.want, v.String())
	}
	return fmt.Errorf("wants %s, got %s", k.want, v.Type())
}

var (
	strKind = &kind{"a string", func(k *kind, v starlark.Value, _ string) (any, error) {
		if s, ok := v.(starlark.String); ok {
			return string(s), nil
		}
		return nil, k.wrong(v, false)
	}}
	// userKind is whose systemd manager a unit method asks: None (the
	// system's) unpacks to "".
	userKind = &kind{"a user name, or None for the system's units", func(k *kind, v starlark.Value, _ string) (any, error) {
		switch v := v.(type) {
		case starlark.NoneType:
			return "", nil
		case starlark.String:
			if v != "" {
				return string(v), nil
			}
			return nil, k.wrong(v, true)
		case starlark.Int, starlark.Float:
			// wait_for_unit("x", 120) meant a timeout before user= came
			// second, as in NixOS's driver.
			return nil, fmt.Errorf("%w (a timeout goes by name: timeout = %s)", k.wrong(v, false), v)
		}
		return nil, k.wrong(v, false)
	}}
	// boolKind is a Starlark bool: 0 and 1 are not, as in UnpackArgs.
	boolKind = &kind{"True or False", func(k *kind, v starlark.Value, _ string) (any, error) {
		if b, ok := v.(starlark.Bool); ok {
			return bool(b), nil
		}
		return nil, k.wrong(v, false)
	}}
	portKind = intKind("a port number 1..65535", 1, 65535)
	// vlanKind: VLANs are numbered 1..254 like the machines on them (see lab).
	vlanKind = intKind("a VLAN number 1..254", 1, 254)
	// timeoutKind: None or 0 means the machine's default timeout (15 minutes
	// under TCG).
	timeoutKind = durationKind(`a duration of 0 or more, such as "30s" or a number of seconds (None: the default)`, true)
	secondsKind = durationKind(`a duration of 0 or more, such as "30s" or a number of seconds`, false)
	// outDirKind is a directory under the test's output directory.
	outDirKind = &kind{"a relative directory without ..", func(k *kind, v starlark.Value, _ string) (any, error) {
		s, ok := v.(starlark.String)
		if !ok {
			return nil, k.wrong(v, false)
		}
		if filepath.IsAbs(string(s)) || slices.Contains(strings.Split(filepath.ToSlash(string(s)), "/"), "..") {
			return nil, k.wrong(v, true)
		}
		return string(s), nil
	}}
	// probKind is a probability; an int (0 or 1) is one too.
	probKind = &kind{"a probability in [0, 1]", func(k *kind, v starlark.Value, _ string) (any, error) {
		switch v.(type) {
		case starlark.Int, starlark.Float:
			f, _ := starlark.AsFloat(v)
			if f < 0 || f > 1 || math.IsNaN(f) {
				return nil, k.wrong(v, true)
			}
			return f, nil
		}
		return nil, k.wrong(v, false)
	}}
	// faultVLANKind: 0 means every VLAN the two machines share.
	faultVLANKind = intKind("a VLAN number 1..254, or 0 for all", 0, 254)
	rateKind      = intKind("a rate in bits per second, 0 or more (0: no limit)", 0, math.MaxInt)
	callableKind  = &kind{"a function", func(k *kind, v starlark.Value, _ string) (any, error) {
		if f, ok := v.(starlark.Callable); ok {
			return f, nil
		}
		return nil, k.wrong(v, false)
	}}
	machineKind = &kind{"a machine", func(k *kind, v starlark.Value, _ string) (any, error) {
		if m, ok := v.(*machineValue); ok {
			return m, nil
		}
		return nil, k.wrong(v, false)
	}}
	// anyKind is any value: the assertions compare whatever they get.
	anyKind      = &kind{"any value", func(_ *kind, v starlark.Value, _ string) (any, error) { return v, nil }}
	groupKind    = &kind{"a list of machines", unpackGroup}
	hostPathKind = &kind{"a host file or directory that exists (relative paths are relative to the test file)", unpackHostPath}
)

// intKind takes an int in lo..hi.
func intKind(want string, lo, hi int) *kind {
	return &kind{want, func(k *kind, v starlark.Value, _ string) (any, error) {
		i, ok := v.(starlark.Int)
		if !ok {
			return nil, k.wrong(v, false)
		}
		n, ok := i.Int64()
		if !ok || n < int64(lo) || n > int64(hi) {
			return nil, k.wrong(v, true)
		}
		return int(n), nil
	}}
}

// maxSeconds is the longest duration a time.Duration holds (292 years).
var maxSeconds = float64(math.MaxInt64) / float64(time.Second)

// durationKind takes a number of seconds or a string for
// time.ParseDuration ("30s", "2m"), never negative; with orNone, also None
// (which unpacks to 0).
func durationKind(want string, orNone bool) *kind {
	return &kind{want, func(k *kind, v starlark.Value, _ string) (any, error) {
		switch v := v.(type) {
		case starlark.NoneType:
			if orNone {
				return time.Duration(0), nil
			}
		case starlark.Int, starlark.Float:
			f, _ := starlark.AsFloat(v)
			d := time.Duration(f * float64(time.Second))
			// f >= maxSeconds overflows; a positive f that rounds to 0 ns
			// would silently become the default timeout.
			if f < 0 || f >= maxSeconds || math.IsNaN(f) || f > 0 && d == 0 {
				return nil, k.wrong(v, true)
			}
			return d, nil
		case starlark.String:
			d, err := time.ParseDuration(string(v))
			if err != nil || d < 0 {
				return nil, k.wrong(v, true)
			}
			return d, nil
		}
		return nil, k.wrong(v, false)
	}}
}

// unpackHostPath resolves a host path against the test file's directory,
// as copy_from_host does, and wants it to exist.
func unpackHostPath(k *kind, v starlark.Value, base string) (any, error) {
	s, ok := v.(starlark.String)
	if !ok {
		return nil, k.wrong(v, false)
	}
	p := string(s)
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	if _, err := os.Stat(p); err != nil {
		why := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			why = p + " does not exist"
		}
		return nil, fmt.Errorf("wants %s, got %s (%s)", k.want, s.String(), why)
	}
	return p, nil
}

// unpackGroup takes a list (or any iterable) of machines, for partition:
// their names.
func unpackGroup(k *kind, v starlark.Value, _ string) (any, error) {
	iter, ok := v.(starlark.Iterable)
	if !ok {
		return nil, k.wrong(v, false)
	}
	it := iter.Iterate()
	defer it.Done()
	names := []string{}
	var x starlark.Value
	for it.Next(&x) {
		m, ok := x.(*machineValue)
		if !ok {
			return nil, fmt.Errorf("wants %s, got %s holding %s", k.want, v.Type(), x.Type())
		}
		names = append(names, m.name)
	}
	return names, nil
}
