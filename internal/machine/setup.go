package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/spec"
)

// Setup, Account and File are the declaration's (package spec): users and
// groups, files, kernel modules and sysctls the guest gets at every boot. The
// setup runs the host's own tools in the guest (groupadd, useradd, modprobe),
// since the guest's root is the host's.
type (
	Setup   = spec.Setup
	Account = spec.Account
	File    = spec.File
)

// setupCommands returns the shell commands that apply the setup, each with
// the stdin it reads (files are written from stdin).
func setupCommands(s Setup) []setupCommand {
	var cmds []setupCommand
	groups := slices.Clone(s.Groups)
	for _, u := range s.Users {
		groups = append(groups, u.Groups...)
	}
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		cmds = append(cmds, setupCommand{cmd: "getent group " + quote(g) + " >/dev/null || groupadd " + quote(g)})
	}
	for _, u := range s.Users {
		shell := u.Shell
		if shell == "" {
			shell = "/bin/sh"
		}
		args := []string{"useradd", "-m", "-U", "-s", quote(shell)}
		if len(u.Groups) > 0 {
			args = append(args, "-G", quote(strings.Join(u.Groups, ",")))
		}
		cmds = append(cmds, setupCommand{cmd: strings.Join(append(args, quote(u.Name)), " ")})
	}
	for _, m := range s.Modules {
		cmds = append(cmds, setupCommand{cmd: "modprobe " + quote(m)})
	}
	keys := make([]string, 0, len(s.Sysctls))
	for k := range s.Sysctls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		cmds = append(cmds, setupCommand{cmd: "echo " + quote(s.Sysctls[k]) + " > " + quote(path)})
	}
	for _, f := range s.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		cmd := fmt.Sprintf("mkdir -p %s && cat > %s && chmod %o %s", quote(filepath.Dir(f.Path)), quote(f.Path), mode, quote(f.Path))
		cmds = append(cmds, setupCommand{cmd: cmd, stdin: f.Content})
	}
	return cmds
}

type setupCommand struct{ cmd, stdin string }

// quote makes s one word for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// applySetup runs the setup commands; a failure names the step and its output.
func (m *Machine) applySetup(ctx context.Context, agent *agentclient.Client) error {
	for _, c := range setupCommands(m.cfg.Setup) {
		var out strings.Builder // stdout and stderr as they came
		o := execOptions{stdout: &out, stderr: &out}
		if c.stdin != "" {
			o.stdin = strings.NewReader(c.stdin)
		}
		r, err := m.exec(ctx, agent, c.cmd, o)
		if err != nil {
			return fmt.Errorf("set up the machine: %w", err)
		}
		if r.Status != 0 {
			return fmt.Errorf("set up the machine: %s: exit status %d: %s", c.cmd, r.Status, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// diskArgs creates the machine's extra disks (sparse files, once) and
// returns their QEMU arguments. A disk that cannot be created shows up as
// QEMU's error at boot.
func (m *Machine) diskArgs() []string {
	var args []string
	for i, size := range m.cfg.Disks {
		path := filepath.Join(m.dir, fmt.Sprintf("disk%d.img", i))
		if _, err := os.Stat(path); err != nil {
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				f.Truncate(int64(size) << 20)
				f.Close()
			}
		}
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "file="+strings.ReplaceAll(path, ",", ",,")+",format=raw,if=none,id="+id,
			"-device", "virtio-blk-pci,drive="+id)
	}
	return args
}
