package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/keys"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/spec"
)

// The screen and keyboard methods (docs/screens.md): they need a machine
// with a display, declared with display = True or given one by Load for a
// literal call (implyDisplays); Load refuses a literal call on a machine
// declared with display = False, and the call checks again when it runs,
// before it boots the machine.

var (
	// keyKind is a key name (keys.Parse): a literal unknown one is refused
	// at load time, with the near names.
	keyKind = &kind{"a key name such as \"ret\" or \"ctrl-alt-delete\"", func(k *kind, v starlark.Value, _ string) (any, error) {
		s, ok := v.(starlark.String)
		if !ok {
			return nil, k.wrong(v, false)
		}
		if _, err := keys.Parse(string(s)); err != nil {
			return nil, fmt.Errorf("wants a known key name, got %s: %w", s.String(), errors.Unwrap(err))
		}
		return string(s), nil
	}}
	// charsKind is text typed on a US keyboard (keys.Chars).
	charsKind = &kind{"a string of characters a US keyboard types", func(k *kind, v starlark.Value, _ string) (any, error) {
		s, ok := v.(starlark.String)
		if !ok {
			return nil, k.wrong(v, false)
		}
		if _, err := keys.Chars(string(s)); err != nil {
			return nil, fmt.Errorf("wants characters a US keyboard types, got %s: %w", s.String(), err)
		}
		return string(s), nil
	}}
	// shotKind is a screenshot's file name under the test's output
	// directory: NAME or NAME.png, so that it never names one of vmlab's
	// own files there (console.log, vlan1.pcap).
	shotKind = &kind{"a relative file name without .., ending in .png or without an extension", func(k *kind, v starlark.Value, _ string) (any, error) {
		s, ok := v.(starlark.String)
		if !ok {
			return nil, k.wrong(v, false)
		}
		ext := filepath.Ext(string(s))
		if s == "" || filepath.IsAbs(string(s)) || slices.Contains(strings.Split(filepath.ToSlash(string(s)), "/"), "..") ||
			ext != "" && !strings.EqualFold(ext, ".png") {
			return nil, k.wrong(v, true)
		}
		return string(s), nil
	}}

	// keyDelayKind is the pause after each key: None (the default) or 0
	// is none. NixOS's driver defaults to 0.01 s after each key so that
	// keys are not lost; here the guest acknowledges them instead
	// (machine.SendChars: vmlab never sends more than the keyboard's
	// queue holds), so a pause is only what the test asks for.
	keyDelayKind = durationKind(`a pause after each key: a duration such as "50ms" or a number of seconds (None: no pause)`, true)

	pShotName = param{"filename", shotKind, nil, func(a *args) any { return &a.target }}
	pKeyDelay = param{"delay", keyDelayKind, starlark.None, func(a *args) any { return &a.keyDelay }}
	pLog      = param{"log", boolKind, starlark.True, func(a *args) any { return &a.log }}
	pKey      = param{"key", keyKind, nil, func(a *args) any { return &a.q }}
	pChars    = param{"chars", charsKind, nil, func(a *args) any { return &a.command }}
	pMonitor  = param{"command", strKind, nil, func(a *args) any { return &a.command }}
	pConsole  = param{"chars", strKind, nil, func(a *args) any { return &a.command }}
)

// screenMethods are the screen and keyboard methods, in methodTable.
var screenMethods = []*method{
	{signature: sig("screenshot", pShotName), boots: true, display: true, do: screenshot},
	// send_key(key, delay=None, log=True) and send_chars(chars,
	// delay=None) as NixOS's: log=False keeps the call off the timeline,
	// as NixOS's keeps it out of its log.
	{signature: sig("send_key", pKey, pKeyDelay, pLog), boots: true, display: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().SendKey(c.r.ctx, c.q, c.keyDelay))
	}},
	{signature: sig("send_chars", pChars, pKeyDelay), boots: true, display: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().SendChars(c.r.ctx, c.command, c.keyDelay))
	}},
	{signature: sig("send_monitor_command", pMonitor), boots: true, do: func(c *call) (starlark.Value, error) {
		return str(c.mm().SendMonitorCommand(c.r.ctx, c.command))
	}},
	{signature: sig("send_console", pConsole), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().SendConsole(c.r.ctx, c.command))
	}},
}

// screenshot is screenshot(filename): a PNG of the display saved in the
// test's output directory (".png" added to a name without it), linked
// from the reports and shown inline in report.html. It returns the path.
func screenshot(c *call) (starlark.Value, error) {
	name := c.target
	if filepath.Ext(name) == "" {
		name += ".png"
	}
	dst, err := spec.Inside(c.r.out, name)
	if err != nil {
		return nil, fmt.Errorf("screenshot: filename %q must be relative to the test's output directory: %w", c.target, err)
	}
	png, err := c.mm().Screenshot(c.r.ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, fmt.Errorf("screenshot: %w", err)
	}
	if err := os.WriteFile(dst, png, 0o600); err != nil {
		return nil, fmt.Errorf("screenshot: %w", err)
	}
	c.file = dst
	return starlark.String(dst), nil
}

// needsDisplay is the refusal of a screen method on a machine without a
// display when it runs: a call Load could not see (on a function's
// parameter), so the machine was not given one.
func needsDisplay(meth *method, m *machineValue) error {
	return fmt.Errorf("%s(): machine %s has no display: declare it with machine(display = True)", meth.name, m.name)
}

// implyDisplays gives a display to each machine whose declaration does
// not say display = True or False and on which the file calls a screen
// method by its name (desk.send_chars(...)), as if it said True: using
// the screen asks for it. It runs before the declarations are checked.
// A call Load cannot see gives nothing (needsDisplay).
func (file *File) implyDisplays(f *syntax.File) {
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		dot, ok := call.Fn.(*syntax.DotExpr)
		if !ok {
			return true
		}
		m, meth := file.machineNamed(dot.X), methodByName[dot.Name.Name]
		if m == nil || meth == nil || !meth.display || m.displaySaid || m.spec.Display {
			return true
		}
		m.spec.Display = true
		m.displayCall = fmt.Sprintf("%s.%s() at %s", m.name, meth.name, dot.Name.NamePos)
		for i := range file.Specs {
			if file.Specs[i].Name == m.name {
				file.Specs[i].Display = true
			}
		}
		return true
	})
}

// checkDisplayCall is Load's check of a screen method's machine: after
// implyDisplays, only one declared with display = False has none.
func checkDisplayCall(m *machineValue, meth *method, dot *syntax.DotExpr) []error {
	if meth.display && !m.spec.Display {
		return []error{fmt.Errorf("%s: %s(): machine %s has no display: it is declared with display = False; "+
			"make it True, or leave display out (a screen method gives the machine a display)", dot.Name.NamePos, meth.name, m.name)}
	}
	return nil
}

// failureShotTimeout bounds the screenshots of a failed test: a
// screendump takes ~35 ms under TCG, and a hung QEMU must not hold the
// run.
const failureShotTimeout = 10 * time.Second

// failureScreenshots saves a screenshot of each machine with a display
// that is up, after the test failed, as failure-MACHINE.png in the output
// directory, reported on the timeline like screenshot()'s. It boots
// nothing; a machine that cannot be pictured (it died) is skipped, its
// error on the timeline.
func (s *Session) failureScreenshots(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureShotTimeout)
	defer cancel()
	for _, sp := range s.file.Specs {
		if !sp.Display {
			continue
		}
		m := s.r.lab.Machine(sp.Name)
		if m == nil || m.NeedsBoot() {
			continue
		}
		ev := report.Event{Kind: report.Command, Test: s.r.testID(), Machine: sp.Name, Command: "screenshot (the test failed)"}
		start := time.Now()
		png, err := m.Screenshot(ctx)
		if err == nil {
			dst := filepath.Join(s.r.out, "failure-"+sp.Name+".png")
			if err = os.WriteFile(dst, png, 0o600); err == nil {
				ev.File = dst
			}
		}
		ev.Duration = time.Since(start)
		outcome(&ev, false, 0, err)
		if err != nil {
			ev.Error = err.Error()
		}
		s.r.rep.Emit(ev)
	}
}
