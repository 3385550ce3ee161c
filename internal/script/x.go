package script

import (
	"go.starlark.net/starlark"
)

// The X methods (docs/screens.md, "X"): the guest's X server on display
// :0, asked by the agent as an X client. Like the other screen methods
// they need a machine declared with display = True.

// xMethods are the X methods, in methodTable, named as NixOS names them.
var xMethods = []*method{
	{signature: sig("wait_for_x", pTimeout), boots: true, display: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForX(c.r.ctx, c.timeout))
	}},
	{signature: sig("wait_for_window", pRegexp, pTimeout), boots: true, display: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForWindow(c.r.ctx, c.regex, c.timeout))
	}},
	{signature: sig("get_window_names"), boots: true, display: true, do: getWindowNames},
}

// getWindowNames is get_window_names(): the names of the windows, a list
// of strings in the order of the window tree.
func getWindowNames(c *call) (starlark.Value, error) {
	names, err := c.mm().WindowNames(c.r.ctx)
	if err != nil {
		return nil, err
	}
	list := make([]starlark.Value, len(names))
	for i, n := range names {
		list[i] = starlark.String(n)
	}
	return starlark.NewList(list), nil
}
