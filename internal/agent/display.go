package agent

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// The display of a machine declared with one (BootConfig.Display): the
// emulated card's DRM driver, loaded from the initramfs's /modules/display
// before the root is built, puts the kernel's framebuffer console on it; a
// root shell runs on tty1, so that keys typed on the display (send_chars)
// reach something: in fast mode started here, under systemd as a unit
// (consoleUnit, systemd_units.go).

// consoleTTY is the virtual terminal the shell runs on: the one the
// framebuffer console shows at boot.
const consoleTTY = "/dev/tty1"

// loadDisplayModules loads the modules the initramfs lists in
// /modules/display, in order.
func loadDisplayModules() error {
	if initramfsModules == nil {
		return fmt.Errorf("load display modules: the initramfs is not available")
	}
	list, err := readAt(initramfsModules, "display")
	if err != nil {
		return fmt.Errorf("read display module list: %w", err)
	}
	for _, name := range strings.Fields(string(list)) {
		if err := loadModuleAt(initramfsModules, name); err != nil {
			return fmt.Errorf("load display module: %w", err)
		}
	}
	return nil
}

// quickExits is how many times in a row the console shell may exit within
// quickExit of its start before it is given up: a shell that cannot start
// would otherwise be restarted in a busy loop.
const (
	quickExits = 5
	quickExit  = time.Second
)

// startConsoleShell opens tty1 and runs a login shell as root on it, as
// its controlling terminal, starting a new one whenever it exits (a test
// typed "exit"), as getty would. tty1 is open when it returns: keys typed
// on a VT nobody has open are dropped, and the host may type as soon as
// the agent says hello. The loop ends when the shell keeps failing at
// once, after saying so on the console.
func startConsoleShell() {
	tty, err := os.OpenFile(consoleTTY, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmlab: no shell on %s: %v\n", consoleTTY, err)
		return
	}
	go func() {
		quick := 0
		for quick < quickExits {
			began := time.Now()
			err := consoleShellOnce(tty)
			tty.Close()
			if time.Since(began) >= quickExit {
				quick = 0
			} else if quick++; quick == quickExits {
				fmt.Fprintf(os.Stderr, "vmlab: the shell on %s exited %d times at once, giving up: %v\n", consoleTTY, quickExits, err)
				return
			}
			if tty, err = os.OpenFile(consoleTTY, os.O_RDWR, 0); err != nil {
				fmt.Fprintf(os.Stderr, "vmlab: no shell on %s: %v\n", consoleTTY, err)
				return
			}
		}
	}()
}

// consoleShellOnce runs one login shell on tty until it exits.
func consoleShellOnce(tty *os.File) error {
	sh := loginShell()
	cmd := exec.Command(sh.path, sh.opts...)
	cmd.Dir = "/root"
	if _, err := os.Stat(cmd.Dir); err != nil {
		cmd.Dir = "/"
	}
	cmd.Env = withCoverage([]string{"PATH=" + agentproto.DefaultPath, "HOME=/root", "USER=root", "LOGNAME=root", "TERM=linux"}, nil)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err := cmd.Start()
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", sh.path, consoleTTY, err)
	}
	return cmd.Wait()
}
