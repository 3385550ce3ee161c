package spec

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/near"
)

// This file holds Check's rules for systemd machines: init, units, enable,
// and the services a systemd guest runs as units. Every rule runs when the
// file loads, before any machine boots.

// initValues are the values init may have besides "" (the default, fast).
var initValues = []string{InitFast, InitSystemd}

// reservedUnits is the prefix of the units vmlab writes into every
// systemd guest (vmlab-agent.service): a test's unit
// of that name would replace vmlab's own.
const reservedUnits = "vmlab-"

// DeclaredUnits returns the names of the units m's declaration adds to a
// systemd guest: Units' names and, rendered as units, Services' (web is
// web.service). Nil when m is not systemd.
func (m Machine) DeclaredUnits() []string {
	if !m.Systemd() {
		return nil
	}
	var out []string
	for _, u := range m.Units {
		out = append(out, u.Name)
	}
	for _, s := range m.Services {
		out = append(out, s.Name+".service")
	}
	return out
}

func (c *checker) init(host Host) {
	switch c.m.Init {
	case "", InitFast:
	case InitSystemd:
		if !host.Systemd && c.m.Image == "" {
			c.add("init", `init = "systemd": the machines' root (the host's) has no %s: install systemd on the host (apt-get install systemd), or leave init out for vmlab's fast mode`, SystemdPath)
		}
	default:
		c.add("init", `init %q: want "systemd", or "fast" (the default)%s`, c.m.Init, near.Hint(c.m.Init, initValues))
	}
}

// systemdOnly refuses units and enable on a machine that is not systemd.
// With an init value that is wrong, init's own problem says what to fix.
func (c *checker) systemdOnly() {
	if c.m.Systemd() || !(c.m.Init == "" || c.m.Init == InitFast) {
		return
	}
	const why = `add init = "systemd" to the machine (in fast mode, the default, vmlab's agent is PID 1 and runs no unit files; services = {...} run there)`
	if len(c.m.Units) > 0 {
		c.add("units", "units need a systemd machine: %s", why)
	}
	if len(c.m.Enable) > 0 {
		c.add("enable", "enable needs a systemd machine: %s", why)
	}
}

// units checks the declared unit files: their names, each once, none of
// vmlab's own or a service's, and texts systemd reads as a unit file.
func (c *checker) units() {
	services := make(map[string]bool)
	if c.m.Systemd() {
		for _, s := range c.m.Services {
			services[s.Name+".service"] = true
		}
	}
	seen := make(map[string]bool)
	for _, u := range c.m.Units {
		if err := agentproto.CheckUnitName(u.Name); err != nil {
			c.add("units", "%v", err)
		}
		switch {
		case seen[u.Name]:
			c.add("units", "unit %s is declared twice", u.Name)
		case strings.HasPrefix(u.Name, reservedUnits):
			c.add("units", "unit %s: names starting %q are vmlab's own units in the guest: rename it", u.Name, reservedUnits)
		case services[u.Name]:
			c.add("units", "unit %s: services = {%q: ...} runs as %s too: rename one, or declare it in one place", u.Name,
				strings.TrimSuffix(u.Name, ".service"), u.Name)
		}
		seen[u.Name] = true
		if err := checkUnitText(u.Name, u.Text); err != nil {
			c.add("units", "unit %s: %v", u.Name, err)
		}
	}
}

// serviceUnits checks, on a systemd machine, that each service's name
// makes a unit name (it runs as NAME.service) that is not vmlab's own.
// Fast-mode services may have any name.
func (c *checker) serviceUnits() {
	if !c.m.Systemd() {
		return
	}
	for _, s := range c.m.Services {
		if s.Name == "" {
			continue // CheckService says so
		}
		unit := s.Name + ".service"
		switch {
		case agentproto.CheckUnitName(unit) != nil || agentproto.IsTemplate(unit):
			c.add("services", "service %q: a systemd machine runs it as the unit %q, which is not a unit name: name it with letters, digits, ':', '-', '_' and '.'", s.Name, unit)
		case strings.HasPrefix(unit, reservedUnits):
			c.add("services", "service %q: names starting %q are vmlab's own units in the guest: rename it", s.Name, reservedUnits)
		}
	}
}

// checkUnitText reports a text systemd cannot read as the unit file the
// test means: empty, a setting before any section header (systemd
// ignores it: "Assignment outside of section"), no section at all, or a
// template enabled through [Install] without DefaultInstance=.
func checkUnitText(name, text string) error {
	if strings.TrimSpace(text) == "" {
		return errors.New(`empty text: want a unit file, such as "[Service]\nExecStart=/usr/bin/thing\n"`)
	}
	section, sections := "", 0
	var install []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			sections++
		case section == "":
			return fmt.Errorf("line %d %q is outside any section, and systemd ignores it: put a section header ([Unit], [Service], [Install], ...) above it", i+1, line)
		case section == "Install":
			key, value, _ := strings.Cut(line, "=")
			key = strings.TrimSpace(key)
			install = append(install, key)
			if err := checkInstallValue(name, key, strings.TrimSpace(value)); err != nil {
				return fmt.Errorf("line %d %q: %w", i+1, line, err)
			}
		}
	}
	if sections == 0 {
		return errors.New("no section header: want a unit file with sections such as [Unit], [Service] and [Install]")
	}
	enabled := slices.Contains(install, "WantedBy") || slices.Contains(install, "RequiredBy")
	if agentproto.IsTemplate(name) && enabled && !slices.Contains(install, "DefaultInstance") {
		return fmt.Errorf("a template's [Install] needs DefaultInstance= to be enabled (or leave WantedBy= out and enable an instance: enable = [%q])",
			strings.TrimSuffix(name, agentproto.UnitType(name))+"NAME"+agentproto.UnitType(name))
	}
	return nil
}

// checkInstallValue checks the [Install] settings vmlab acts on: each
// unit WantedBy= and RequiredBy= name, and the instance DefaultInstance=
// makes, are unit names (the guest makes links by those names).
func checkInstallValue(unit, key, value string) error {
	switch key {
	case "WantedBy", "RequiredBy":
		for _, t := range strings.Fields(value) {
			if err := agentproto.CheckUnitName(t); err != nil {
				return fmt.Errorf("%s= wants unit names: %w", key, err)
			}
		}
	case "DefaultInstance":
		if !agentproto.IsTemplate(unit) {
			return nil
		}
		if err := agentproto.CheckUnitName(strings.Replace(unit, "@.", "@"+value+".", 1)); err != nil {
			return fmt.Errorf("DefaultInstance= makes no unit name: %w", err)
		}
	}
	return nil
}

// enable checks the units to start at boot: names systemd takes (a
// template needs an instance), each once, and each declared or on the
// root when the host can list the root's units.
func (c *checker) enable(host Host) {
	declared := c.m.DeclaredUnits()
	var root []string
	// An image's units are not the host's: they are not known here.
	if host.Units != nil && host.Systemd && c.m.Image == "" {
		root = host.Units()
	}
	seen := make(map[string]bool)
	for _, name := range c.m.Enable {
		unit := UnitName(name)
		if err := agentproto.CheckUnitName(unit); err != nil {
			c.add("enable", "%v", err)
			continue
		}
		switch {
		case agentproto.IsTemplate(unit):
			c.add("enable", "unit %s is a template: enable an instance of it, such as %q", unit,
				strings.TrimSuffix(unit, agentproto.UnitType(unit))+"NAME"+agentproto.UnitType(unit))
		case seen[unit]:
			c.add("enable", "unit %s is listed twice", unit)
		case HasUnit(declared, unit) || root == nil || HasUnit(root, unit):
		default:
			c.add("enable", "no unit %s in units or in the root's /%s and /%s%s: declare it in units, or install the package that ships it on the host (the guests' root is the host's)",
				unit, UnitDirs[0], UnitDirs[1], near.Mean(NearUnits(unit, slices.Concat(declared, root))))
		}
		seen[unit] = true
	}
}

// NearUnits returns up to three of names that unit may mean: those a
// couple of edits away ("nfs-servr.service": nfs-server.service), else,
// for a mistyped type that UnitName took for part of a service's name
// ("x.servic" is x.servic.service), those a couple of edits from the name
// as written (x.service), else those whose name starts with unit's
// ("redis": redis-server.service, "nfs": nfs-kernel-server.service and
// nfs-server.service).
func NearUnits(unit string, names []string) []string {
	if found := near.Names(unit, names, 3); len(found) > 0 {
		return found
	}
	stem := strings.TrimSuffix(unit, agentproto.UnitType(unit))
	if agentproto.UnitType(unit) == ".service" && strings.Contains(stem, ".") {
		if found := near.Names(stem, names, 3); len(found) > 0 {
			return found
		}
	}
	if len(stem) < 3 {
		return nil
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, stem) && !slices.Contains(out, n) && len(out) < 3 {
			out = append(out, n)
		}
	}
	return out
}
