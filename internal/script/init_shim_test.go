package script

import (
	"slices"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/spec"
)

// The declarations' part of issue 11 gives machine() its init and enable
// arguments; until it is merged, the unit methods' tests declare them
// with these stand-ins, which step aside once machine() has its own.
// Delete this file then.
func init() {
	has := func(name string) bool {
		return slices.ContainsFunc(machineArgs, func(a machineArg) bool { return a.name == name })
	}
	if !has("init") {
		machineArgs = append(machineArgs, machineArg{"init", into(func(v starlark.Value) (s string, err error) {
			return s, setString(&s, v)
		}, func(s *spec.Machine) *string { return &s.Init })})
	}
	if !has("enable") {
		machineArgs = append(machineArgs, machineArg{"enable", into(stringList, func(s *spec.Machine) *[]string { return &s.Enable })})
	}
}
