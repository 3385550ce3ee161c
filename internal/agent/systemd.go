package agent

// A systemd guest (BootConfig.Init "systemd"): the agent that is PID 1
// builds the root as in fast mode, hides the host's enablement links under
// /etc, prepares /run (prepareSystemd) and serves the host as in fast mode:
// hello, network, setup. The host's OpServices carries the machine's units:
// the agent writes them into /run/systemd/system, answers, and hands PID 1
// to the root's systemd (the handover), which starts multi-user.target with
// every unit in place, and among them the agent again, as
// vmlab-agent.service (unitMode), which says hello again and serves the
// host from then on. docs/systemd.md explains the choices with their
// measured costs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// initSystemd is BootConfig.Init for a systemd guest (spec.InitSystemd).
const initSystemd = "systemd"

// stagesFile carries the PID-1 agent's boot stages to the unit agent, which
// reports them in its hello with its own.
const stagesFile = runDir + "/stages.json"

// handover is set by a systemd guest's PID-1 agent: it execs systemd, and
// returns only on failure. The server calls it once it has answered the
// host's OpServices (the machine's units installed).
var handover func() error

// prepareSystemd checks the root has systemd and prepares /run for it, so a
// root without systemd fails the boot before the agent serves; display
// says the machine has one, whose tty1 gets a shell.
func prepareSystemd(display bool) error {
	if err := checkSystemd("/"); err != nil {
		return err
	}
	if err := copyAgent(); err != nil {
		return err
	}
	if err := copyLazyModules(filepath.Join(runDir, "modules")); err != nil {
		return err
	}
	if err := saveCoverage(); err != nil {
		return err
	}
	return writeRunUnits("/", display)
}

// execSystemd execs the root's systemd into multi-user.target, leaving the
// PID-1 agent's boot stages for the unit agent's hello. It returns only on
// failure.
func execSystemd(stages []agentproto.Stage) error {
	stages = append(stages, agentproto.Stage{Name: "systemd", Uptime: uptime()})
	b, _ := json.Marshal(stages)
	if err := os.WriteFile(stagesFile, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stagesFile, err)
	}
	argv := []string{systemdPath, "--unit=" + bootTarget}
	if err := unix.Exec(systemdPath, argv, os.Environ()); err != nil {
		return fmt.Errorf("boot systemd: exec %s: %w", systemdPath, err)
	}
	return nil
}

// checkSystemd says clearly when root has no systemd to boot.
func checkSystemd(root string) error {
	fi, err := os.Stat(filepath.Join(root, systemdPath))
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return nil
	}
	if rootImage != "" {
		return fmt.Errorf("boot systemd: the image %s has no %s (init = \"systemd\" boots the root's systemd): "+
			"add systemd to the image, or leave init at its default, fast", rootImage, systemdPath)
	}
	return fmt.Errorf("boot systemd: the machine's root has no %s (init = \"systemd\" boots the root's systemd): "+
		"install systemd on the host, or leave init at its default, fast", systemdPath)
}

// copyAgent copies this binary to /run/vmlab/agent, which the agent's unit
// runs: the initramfs it came from is hidden once the root is switched.
func copyAgent() error {
	in, err := os.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("copy the agent: %w", err)
	}
	defer in.Close()
	path := filepath.Join(runDir, "agent")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("copy the agent: %w", err)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy the agent: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy the agent to %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy the agent to %s: %w", path, err)
	}
	return nil
}

// copyLazyModules copies the initramfs's lazy modules (network drivers,
// loaded when the host configures a NIC) and their list to dir, where the
// unit agent finds them.
func copyLazyModules(dir string) error {
	if initramfsModules == nil {
		return nil
	}
	list, err := readAt(initramfsModules, "lazy")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lazy module list: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("copy lazy modules: %w", err)
	}
	for _, name := range append(strings.Fields(string(list)), "lazy") {
		b, err := readAt(initramfsModules, name)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("copy lazy module %s: %w", name, err)
		}
	}
	return nil
}

// hideHostUnits fills dir with overlayfs whiteouts for what a systemd guest
// must not see of the share mounted at guestPath, whose host files are in
// lower: under /etc, the host's enablement directories (the links the
// host's `systemctl enable` made); anywhere, the distribution's static
// links in unwantedLinks. dir then goes between the share and the guest's
// writable layer: the guest does not see them, and nothing is deleted.
// Links the guest makes itself go to its writable layer, above the
// whiteouts: on a kept disk they survive the next boot. It reports whether
// it hid anything.
func hideHostUnits(lower, guestPath, dir string) (bool, error) {
	var hide []string
	if filepath.Clean(guestPath) == "/etc" {
		for _, rel := range hiddenEnablement {
			entries, _ := os.ReadDir(filepath.Join(lower, rel))
			for _, e := range entries {
				if e.IsDir() && isEnablementDir(e.Name()) {
					hide = append(hide, filepath.Join(rel, e.Name()))
				}
			}
		}
	}
	for _, p := range unwantedLinks {
		rel, err := filepath.Rel(filepath.Clean(guestPath), p)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(lower, rel)); err == nil {
			hide = append(hide, rel)
		}
	}
	for _, rel := range hide {
		if err := whiteout(filepath.Join(dir, rel)); err != nil {
			return false, err
		}
	}
	return len(hide) > 0, nil
}

// whiteout makes path an overlayfs whiteout: a character device 0:0.
func whiteout(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("hide the host's enabled units: %w", err)
	}
	if err := unix.Mknod(path, unix.S_IFCHR|0o600, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("hide the host's enabled units: whiteout %s: %w", path, err)
	}
	return nil
}

// unitMain is the agent run by systemd: it serves the host on the port,
// with the lazy modules the PID-1 agent left in /run/vmlab/modules.
// Orphans are systemd's to reap.
func unitMain() {
	if d, err := os.Open(filepath.Join(runDir, "modules")); err == nil {
		initramfsModules = d
	}
	unitCoverage()
	var stages []agentproto.Stage
	if b, err := os.ReadFile(stagesFile); err == nil {
		json.Unmarshal(b, &stages)
	}
	serve(append(stages, agentproto.Stage{Name: "unit", Uptime: uptime()}))
}

// forceAfter bounds a systemd guest's power-off and reboot: a guest that is
// not down this long after the agent asked systemd is powered off (or
// rebooted) at once, its file systems synced but not unmounted, as a
// crash() would leave them. systemd stops each unit in stopTimeout (10 s);
// a clean power-off takes 1-3 s under TCG, and a unit that ignores SIGTERM
// with TimeoutStopSec=infinity would hold it for ever. The agent is not
// stopped by the shutdown (DefaultDependencies=no), so its timer runs until
// systemd-shutdown, the last step, sends every process left SIGTERM.
const forceAfter = 20 * time.Second

// systemPowerOff asks systemd to power off or reboot, and forces it after
// forceAfter.
func systemPowerOff(reboot bool) {
	verb, cmd := "poweroff", unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		verb, cmd = "reboot", unix.LINUX_REBOOT_CMD_RESTART
	}
	ctx, cancel := context.WithTimeout(context.Background(), forceAfter)
	defer cancel()
	if err := runTool(ctx, "systemctl", "--no-block", verb); err != nil {
		logf("%s: %v: forcing it", verb, err)
		forcePower(cmd)
		return
	}
	time.AfterFunc(forceAfter, func() {
		logf("%s: systemd was not done after %v: forcing it", verb, forceAfter)
		forcePower(cmd)
	})
}

// forcePower syncs the file systems, for up to a few seconds (an NFS
// server that went away can hold a sync for ever), and powers off or
// reboots.
func forcePower(cmd int) {
	synced := make(chan struct{})
	go func() {
		unix.Sync()
		close(synced)
	}()
	select {
	case <-synced:
	case <-time.After(3 * time.Second):
	}
	if err := unix.Reboot(cmd); err != nil {
		logf("power off: %v", err)
	}
}
