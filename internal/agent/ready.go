package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// The readiness check of a service rendered as a unit (unitservice.go):
// systemd runs the agent binary with argv[0] "vmlab-ready" (the "@" of
// ExecStartPost=) and one of
//
//	port N        until a TCP connect to localhost:N succeeds, checked as
//	              fast mode checks it (every 5 ms: Linux tells nobody
//	              when a socket starts listening)
//	file PATH     until PATH exists, woken by inotify
//	log REGEX     until a line the service wrote to the journal in this
//	              run of the unit ($INVOCATION_ID) matches REGEX; journald
//	              tells followers of new entries at most every 250 ms, so
//	              that is the latency
//
// It exits 0 when the condition holds, non-zero on a bad argument or when
// its means of checking fail; systemd stops it (SIGTERM) when the service
// stops or exits first.

// readyName is the check's argv[0].
const readyName = "vmlab-ready"

// IsReadyCheck reports whether this process is a service's readiness check
// (cmd/vmlab's main runs ReadyMain then).
func IsReadyCheck() bool { return len(os.Args) > 0 && os.Args[0] == readyName }

// ReadyMain runs the readiness check of os.Args and exits.
func ReadyMain() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := readyCheckMain(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", readyName, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func readyCheckMain(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: %s port N | file PATH | log REGEX", readyName)
	}
	switch arg := args[1]; args[0] {
	case "port":
		port, err := strconv.Atoi(arg)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("port %q: want 1 to 65535", arg)
		}
		res := wait(ctx, &agentproto.Wait{Kind: agentproto.WaitPortOpen, Port: port})
		return resultErr(res, "wait for port "+arg)
	case "file":
		return waitFileCreated(ctx, arg)
	case "log":
		re, err := regexp.Compile(arg)
		if err != nil {
			return fmt.Errorf("log pattern: %w", err)
		}
		return waitJournalLine(ctx, re, os.Getenv("INVOCATION_ID"))
	}
	return fmt.Errorf("unknown check %q: want port, file or log", args[0])
}

func resultErr(res agentproto.Result, what string) error {
	switch {
	case res.Error != "":
		return fmt.Errorf("%s: %s", what, res.Error)
	case res.Canceled, res.TimedOut:
		return fmt.Errorf("%s: stopped", what)
	}
	return nil
}

// waitFileCreated returns once path exists. It watches the deepest
// directory on the way to path that exists, and looks again after each
// change there: a creation, a rename into it, or the directory's own
// removal. One watch stays while that directory is the one to watch: an
// event about another file costs one look, not a new watch (removing a
// watch queues an event of its own, which kept the loop spinning).
func waitFileCreated(ctx context.Context, path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("wait for file %s: inotify: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: reads honour deadlines
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	wd, watched := -1, ""
	for {
		fileWaitLooked()
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if dir := existingAncestor(path); dir != watched {
			if wd >= 0 {
				unix.InotifyRmWatch(fd, uint32(wd))
			}
			wd, err = unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_ONLYDIR)
			if err != nil {
				return fmt.Errorf("wait for file %s: watch %s: %w", path, dir, err)
			}
			// Look again: what was made before the watch has no event.
			watched = dir
			continue
		}
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for file %s: %w", path, ctx.Err())
			}
			return fmt.Errorf("wait for file %s: read inotify: %w", path, err)
		}
		if watchEnded(buf[:n], wd) {
			wd, watched = -1, "" // the directory went: watch whatever is there now
		}
	}
}

// fileWaitLooked is called at each look waitFileCreated takes (tests count
// them).
var fileWaitLooked = func() {}

// watchEnded says whether the inotify events in buf include the end of
// watch wd: its directory removed or moved, or the watch dropped.
func watchEnded(buf []byte, wd int) bool {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		if int(ev.Wd) == wd && ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
			return true
		}
		buf = buf[min(len(buf), unix.SizeofInotifyEvent+int(ev.Len)):]
	}
	return false
}

// existingAncestor is the deepest directory above path that exists.
func existingAncestor(path string) string {
	dir := filepath.Dir(filepath.Clean(path))
	for dir != "/" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	return dir
}

// journalctlPath is the journal reader (a var for tests).
var journalctlPath = "journalctl"

// waitJournalLine follows the journal entries of the unit run invocation
// (all of them, from its start) until one's message matches re.
func waitJournalLine(ctx context.Context, re *regexp.Regexp, invocation string) error {
	if invocation == "" {
		return errors.New("wait for log line: no $INVOCATION_ID: not run by systemd")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, journalctlPath, "--follow", "--lines=all", "--output=cat", "--no-pager",
		"_SYSTEMD_INVOCATION_ID="+invocation)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("wait for log line: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("wait for log line: %w", err)
	}
	defer cmd.Wait()
	defer cancel() // runs first: stops journalctl, then Wait reaps it
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if re.MatchString(sc.Text()) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("wait for log line: %w", ctx.Err())
	}
	return fmt.Errorf("wait for log line: journalctl ended: %v", sc.Err())
}
