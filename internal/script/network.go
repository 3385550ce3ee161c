package script

import (
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/report"
)

// networkCalls are the functions and methods that change the network:
// each becomes a Network event on the test's timeline, so that a report
// shows the cause beside a 260 ms ping or a lost connection.
var networkCalls = map[string]bool{
	"partition": true, "heal": true, "link_fault": true, "vlan_fault": true,
	"block": true, "unblock": true,
}

// networkStep runs a network call and reports it: Text is the call as the
// script wrote it, with machines by name (block(2) on "a" reads
// "a.block(2)"). machineName is empty for a top-level function.
func networkStep(r *run, machineName, name string, argv starlark.Tuple, kwargs []starlark.Tuple, do func() (starlark.Value, error)) (starlark.Value, error) {
	start := time.Now()
	v, err := do()
	text := netCallText(name, argv, kwargs)
	if machineName != "" {
		text = machineName + "." + text
	}
	ev := report.Event{Kind: report.Network, Test: r.testID(), Path: r.pathCopy(), Machine: machineName,
		Text: text, Duration: time.Since(start)}
	if err != nil {
		ev.Error = err.Error()
	}
	r.rep.Emit(ev)
	return v, err
}

// netCallText renders a call with machines by name: link_fault(a, b,
// delay = 0.25), partition([a, b], [c]).
func netCallText(name string, argv starlark.Tuple, kwargs []starlark.Tuple) string {
	var parts []string
	for _, a := range argv {
		parts = append(parts, valueText(a))
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s = %s", kv[0].(starlark.String).GoString(), valueText(kv[1])))
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}

// valueText is v as a report shows it: a machine by its name, lists and
// tuples of them element by element.
func valueText(v starlark.Value) string {
	switch v := v.(type) {
	case *machineValue:
		return v.name
	case starlark.Indexable:
		if _, ok := v.(starlark.String); ok {
			break
		}
		open, closing := "[", "]"
		if _, ok := v.(starlark.Tuple); ok {
			open, closing = "(", ")"
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = valueText(v.Index(i))
		}
		return open + strings.Join(parts, ", ") + closing
	}
	return v.String()
}
