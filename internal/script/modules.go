package script

import (
	"context"
	"maps"
	"time"

	"go.starlark.net/lib/json"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// modules are the Starlark modules a file may use without importing them
// (Starlark has no import): re, time and json, each named as the Python
// module NixOS test scripts import.
var modules = starlark.StringDict{
	"re":   reModule,
	"time": timeModule,
	"json": jsonModule,
}

// jsonModule is go.starlark.net's json (encode, decode, indent,
// encode_indent) with Python's names for the two that ports use most:
// loads and dumps.
var jsonModule = &starlarkstruct.Module{Name: "json", Members: with(json.Module.Members, starlark.StringDict{
	"loads": json.Module.Members["decode"],
	"dumps": json.Module.Members["encode"],
})}

// sleepFunction is time.sleep(seconds): it ends early, with the test, when
// the test is stopped (Ctrl-C, -timeout), so a sleep never holds up a stop.
var sleepFunction = &function{sig("time.sleep", param{"seconds", secondsKind, nil, func(a *args) any { return &a.seconds }}),
	func(c *call) (starlark.Value, error) {
		t := time.NewTimer(c.seconds)
		defer t.Stop()
		select {
		case <-t.C:
			return starlark.None, nil
		case <-c.r.ctx.Done():
			return nil, context.Cause(c.r.ctx)
		}
	}}

// moduleFunctions are the module members that take their arguments
// through a signature, so Load checks their literal arguments as it
// checks the table functions'.
var moduleFunctions = map[string]*function{sleepFunction.name: sleepFunction}

// processStart is monotonic()'s origin.
var processStart = time.Now()

// timeModule is Python's time as ports use it (monotonic, time, sleep) and
// go.starlark.net's time module (now, parse_duration, parse_time,
// from_timestamp, durations such as time.second). Its time() is Python's,
// seconds since the epoch as a float, not go.starlark.net's constructor:
// a ported `time.time() - start` must stay a number.
var timeModule = &starlarkstruct.Module{Name: "time", Members: with(startime.Module.Members, starlark.StringDict{
	"monotonic": starlark.NewBuiltin("time.monotonic", func(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), argv, kwargs); err != nil {
			return nil, err
		}
		return starlark.Float(time.Since(processStart).Seconds()), nil
	}),
	"time": starlark.NewBuiltin("time.time", func(_ *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), argv, kwargs); err != nil {
			return nil, err
		}
		return starlark.Float(float64(time.Now().UnixNano()) / 1e9), nil
	}),
	"sleep": starlark.NewBuiltin(sleepFunction.name, sleepFunction.builtin),
})}

// with returns base with extra's members added (or replaced).
func with(base, extra starlark.StringDict) starlark.StringDict {
	d := maps.Clone(base)
	maps.Copy(d, extra)
	return d
}
