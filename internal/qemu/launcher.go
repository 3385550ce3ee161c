package qemu

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// launcher is the OS thread QEMU and its virtiofsd daemons are started from,
// locked for the launcher's life. When the machine has a host view or
// read-only virtiofs shares, the thread has a mount namespace of its own in
// which they are mounted, and the processes it starts inherit it: what they
// can open is what the guest may see (hostview). The host's own mounts never
// see these (the namespace's mounts are private).
//
// PR_SET_PDEATHSIG fires when the thread that started a process ends, not
// the driver, so the thread is kept, blocked, until close, which Process
// calls once QEMU and every daemon have exited. Close does not kill what
// the thread started: the thread may be the process's main thread, which Go
// parks instead of ending (seen in the tests), so whoever starts a process
// also kills it.
type launcher struct {
	calls chan func()
	once  sync.Once
}

// startLauncher starts the thread and runs setup on it (nil: none) before
// anything else.
func startLauncher(setup func() error) (*launcher, error) {
	l := &launcher{calls: make(chan func())}
	started := make(chan error)
	go l.run(setup, started)
	if err := <-started; err != nil {
		return nil, err
	}
	return l, nil
}

func (l *launcher) run(setup func() error, started chan<- error) {
	// Never unlocked: the thread's mount namespace may not be the
	// process's, so Go must not run other goroutines on it; the thread
	// ends when run returns.
	runtime.LockOSThread()
	var err error
	if setup != nil {
		err = setup()
	}
	started <- err
	if err != nil {
		return
	}
	for f := range l.calls {
		f()
	}
}

// do runs f on the launcher's thread and waits for it.
func (l *launcher) do(f func()) {
	done := make(chan struct{})
	l.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// close ends the thread (or parks it for good). It is idempotent.
func (l *launcher) close() {
	if l != nil {
		l.once.Do(func() { close(l.calls) })
	}
}

// privateNamespace moves the calling thread into a new mount namespace whose
// mounts do not propagate to the host's.
func privateNamespace() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("create mount namespace for qemu (hiding the host's secrets from a root qemu needs CAP_SYS_ADMIN): %w", err)
	}
	// Private first, or the binds would propagate to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private for qemu: %w", err)
	}
	return nil
}

// namespaceSetup returns what prepares the launcher's thread for cfg: a
// private mount namespace with the host view's binds, then the read-only
// binds of virtiofs shares; nil when cfg needs neither.
func namespaceSetup(cfg Config) func() error {
	virtiofs := cfg.FS == "virtiofs" && len(cfg.Shares) > 0
	if cfg.View == nil && !virtiofs {
		return nil
	}
	return func() error {
		if err := privateNamespace(); err != nil {
			return err
		}
		if err := cfg.View.Apply(); err != nil {
			return fmt.Errorf("mount the host view for qemu: %w", err)
		}
		if virtiofs {
			return readOnlyBinds(cfg.Shares)
		}
		return nil
	}
}
