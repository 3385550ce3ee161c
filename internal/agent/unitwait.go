package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/sdbus"
)

// wait_for_unit in a guest whose init is systemd: the agent asks systemd
// over its private socket (internal/sdbus) for the unit's state and waits
// for the unit's PropertiesChanged signals, so it sees a transition as it
// happens instead of polling systemctl (120-390 ms a call under TCG, the
// spike measured). It ends the wait:
//
//   - done when ActiveState is "active" or "reloading";
//   - failed at once when it is "failed" with no job pending (a start job
//     queued for a failed unit may still start it), when the unit has no
//     unit file (LoadState "not-found"), one systemd could not load, or is
//     masked (no job can start it), or when it is "inactive" with no job
//     of its own and none at all in the manager, so that nothing will
//     start it: that is the NixOS driver's rule (it runs `systemctl
//     list-jobs`), which lets a unit that another unit's job will start
//     later still be waited for while the system boots;
//   - timed out at the request's deadline.
//
// A failure or a timeout carries `systemctl status` and the unit's last
// journal lines in the Result's Output, which the host prints under the
// error as it does fast mode's last service lines.

// detailsTimeout bounds the commands that explain a failed or timed-out
// wait: the host waits for the result 5 s (scaled) past the timeout.
const detailsTimeout = 3 * time.Second

// journalTail is how many journal lines a failed wait shows, as many as
// fast mode's serviceTail.
const journalTail = serviceTail

// waitSystemdUnit waits for the unit w.Path (completed as systemctl does:
// "web" is "web.service") to be active: the system manager's, or w.User's
// own manager's (started first when it is not running).
func waitSystemdUnit(ctx context.Context, w agentproto.Wait) agentproto.Result {
	if w.Path == "" {
		return agentproto.Result{Error: "bad request: wait for a unit without its name"}
	}
	name := unitName(w.Path)
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	m, err := dialManager(ctx, w.User)
	if err == nil {
		err = waitActive(ctx, m.conn, name, m.user == nil)
		if errors.Is(err, sdbus.ErrClosed) && ctx.Err() == nil {
			// systemd ends its connections when it executes itself
			// again (daemon-reexec): once more, on a new one.
			m.close()
			if m, err = dialManager(ctx, w.User); err == nil {
				err = waitActive(ctx, m.conn, name, m.user == nil)
			}
		}
		defer m.close()
	}
	if f := (*unitFailed)(nil); w.User != "" && errors.As(err, &f) && f.notFound {
		// units = declares system units: a user's unit is a file.
		f.reason = fmt.Sprintf("user %s's unit %s not found: no user unit file in the guest "+
			"(write it with machine(files = {\"/etc/systemd/user/%s\": ...}), or install the package that has it)", w.User, name, name)
	}
	return unitResult(ctx, m, name, err)
}

// manager is a connection to the system manager, or to a user's.
type manager struct {
	conn *sdbus.Conn
	user *user.User // nil: the system manager, whose connection is shared
}

// close closes a user manager's connection.
func (m manager) close() {
	if m.user != nil && m.conn != nil {
		m.conn.Close()
	}
}

// systemBus is the agent's connection to the system manager, which the
// waits share: setting a connection up costs systemd 40-60 ms under TCG,
// a wait for an active unit on one 10-20 ms.
var systemBus struct {
	mu   sync.Mutex
	conn *sdbus.Conn
}

// systemConn returns the shared connection, connecting again when the last
// one has ended. The lock is held only to read or publish the connection,
// never while connecting: a manager slow to answer must not hold the
// other waits past their own deadlines. Of two waits that connect at once,
// the first to finish publishes its connection; the other closes its own.
func systemConn(ctx context.Context) (*sdbus.Conn, error) {
	if c := liveSystemConn(); c != nil {
		return c, nil
	}
	c, err := sdbus.Dial(ctx, systemSocket)
	if err != nil {
		return nil, err
	}
	systemBus.mu.Lock()
	defer systemBus.mu.Unlock()
	if old := systemBus.conn; old != nil {
		select {
		case <-old.Done():
			old.Close()
		default:
			c.Close()
			return old, nil
		}
	}
	systemBus.conn = c
	return c, nil
}

// liveSystemConn is the shared connection, or nil when there is none or it
// has ended.
func liveSystemConn() *sdbus.Conn {
	systemBus.mu.Lock()
	defer systemBus.mu.Unlock()
	if c := systemBus.conn; c != nil {
		select {
		case <-c.Done():
		default:
			return c
		}
	}
	return nil
}

// unitFailed says the wait ended because the unit will not become active;
// failed says its ActiveState is "failed". unit, when set, is the system's
// unit the failure is about, when it is not the one waited for (a user's
// manager, user@UID.service, that did not start).
type unitFailed struct {
	reason   string
	failed   bool
	unit     string
	notFound bool // no unit file: the hint says where a unit file goes
}

func (e *unitFailed) Error() string { return e.reason }

// unitPending says the wait's time ran out; state is where the unit was.
type unitPending struct {
	state unitState
	err   error
}

func (e *unitPending) Error() string { return e.err.Error() }
func (e *unitPending) Unwrap() error { return e.err }

// unitResult is the Result of a wait that ended with err: success, the
// unit's failure or a timeout (each with its details), or an error.
func unitResult(ctx context.Context, m manager, name string, err error) agentproto.Result {
	var failed *unitFailed
	var pending *unitPending
	switch {
	case err == nil:
		return agentproto.Result{}
	case errors.As(err, &failed) && failed.unit != "":
		return agentproto.Result{Exit: 1, Error: failed.reason, Output: unitDetails(ctx, manager{}, failed.unit)}
	case errors.As(err, &failed):
		return agentproto.Result{Exit: 1, Error: failed.reason, Output: unitDetails(ctx, m, name)}
	case ctx.Err() == nil:
		return agentproto.Result{Error: err.Error()}
	case !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return agentproto.Result{Canceled: true}
	}
	out := ""
	if errors.As(err, &pending) {
		out = pending.state.String() + "\n\n"
	}
	if m.conn != nil {
		out += unitDetails(ctx, m, name)
	}
	return agentproto.Result{TimedOut: true, Output: out}
}

// dialManager connects to the system manager, or to userName's manager:
// started through the system manager (startUserManager) when it does not
// run yet, and reached as root, which systemd lets connect to every
// manager's private socket (it accepts root and its own user).
func dialManager(ctx context.Context, userName string) (manager, error) {
	sys, err := systemConn(ctx)
	if err != nil || userName == "" || userName == "root" {
		return manager{conn: sys}, err
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return manager{}, fmt.Errorf("wait for a unit of user %s: no such user in the guest "+
			"(declare it with machine(users = [%q]) or create it in setup)", userName, userName)
	}
	if err := startUserManager(ctx, sys, u); err != nil {
		return manager{}, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	conn, err := sdbus.Dial(ctx, userSocket(uid))
	if err != nil {
		return manager{}, fmt.Errorf("wait for a unit of user %s: %w", userName, err)
	}
	return manager{conn: conn, user: u}, nil
}

// startUserManager starts u's manager, user@UID.service, unless it runs,
// and waits until it is up. The host starts it before it asks (machine's
// WaitForUnit, with lingering, so that it stays); this one covers a
// manager that stopped since. Its user-runtime-dir@UID.service asks logind
// over the system bus, which dbus.socket starts on demand.
func startUserManager(ctx context.Context, sys *sdbus.Conn, u *user.User) error {
	unit := "user@" + u.Uid + ".service"
	err := startUnit(ctx, sys, unit)
	var failed *unitFailed
	switch {
	case errors.As(err, &failed):
		// The details shown are the manager's, not the user's unit's.
		return &unitFailed{reason: fmt.Sprintf("start the service manager of user %s (%s): %s", u.Username, unit, failed.reason),
			failed: failed.failed, unit: unit}
	case err != nil:
		return fmt.Errorf("start the service manager of user %s (%s): %w", u.Username, unit, err)
	}
	return nil
}

// The managers' sockets (vars for tests).
var (
	systemSocket = sdbus.SystemSocket
	userSocket   = sdbus.UserSocket
)

// isActive reports whether unit is active.
func isActive(ctx context.Context, c *sdbus.Conn, unit string) (bool, error) {
	path, err := c.LoadUnit(ctx, unit)
	if err != nil {
		return false, err
	}
	st, err := c.Property(ctx, path, sdbus.UnitInterface, "ActiveState")
	return st == "active", err
}

// startUnit starts unit unless it is active, and waits until it is.
func startUnit(ctx context.Context, c *sdbus.Conn, unit string) error {
	if active, err := isActive(ctx, c, unit); err != nil || active {
		return err
	}
	if _, err := c.StartUnit(ctx, unit, "replace"); err != nil {
		return err
	}
	return waitActive(ctx, c, unit, true)
}

// unitState is what decides a wait.
type unitState struct {
	name                string
	load, active, sub   string
	job                 uint32 // the unit's pending job; 0: none
	loadError           string // why systemd could not load it
	managerJobs         uint32 // jobs in the manager, read when idle
	managerJobsReadable bool
	// conditionFailed: its last start was skipped, a Condition...= was
	// not met; assertFailed: refused, an Assert...= was not.
	conditionFailed, assertFailed bool
	maskedBy                      string // the mask's link, when the system's unit is masked and it is found
}

func (s unitState) String() string {
	text := fmt.Sprintf("%s is %s (%s)", s.name, s.active, s.sub)
	if s.load != "loaded" {
		text += ", load state " + s.load
	}
	if s.job != 0 {
		text += fmt.Sprintf(", job %d pending", s.job)
	} else if s.managerJobsReadable {
		text += fmt.Sprintf(", no job of its own, %d in the manager", s.managerJobs)
	}
	return text
}

// idle says nothing is in progress for the unit: inactive, no job.
func (s unitState) idle() bool { return s.active == "inactive" && s.job == 0 }

// waitActive waits until the unit called name is active, on c, the system
// manager's connection when system is set, a user manager's otherwise. A
// unit that will not be is a *unitFailed, a deadline a *unitPending.
func waitActive(ctx context.Context, c *sdbus.Conn, name string, system bool) error {
	// Signals are asked for before the first read, so none that follows
	// it is missed. Each channel is a flag: the state is read again after
	// each wake-up.
	var path atomic.Pointer[sdbus.ObjectPath]
	changed := make(chan *sdbus.Message, 1)
	c.Notify(changed, func(m *sdbus.Message) bool {
		p := path.Load()
		return m.Member == "PropertiesChanged" && (p == nil || m.Path == *p)
	})
	defer c.StopNotify(changed)
	// Jobs ending: the unit's own (its state may not change: a start job
	// that fails on a dependency leaves a failed unit failed), and any
	// job at all, which matters only to an idle unit: it may have been
	// the manager's last. systemd ends ~100 jobs while it boots; an idle
	// unit is rare, so the second is listened to only then.
	ownJob := make(chan *sdbus.Message, 1)
	c.Notify(ownJob, func(m *sdbus.Message) bool {
		_, _, unit, _, ok := sdbus.JobRemoved(m)
		return ok && unit == name
	})
	defer c.StopNotify(ownJob)
	anyJob := make(chan *sdbus.Message, 1)
	c.Notify(anyJob, func(m *sdbus.Message) bool { return m.Member == "JobRemoved" })
	defer c.StopNotify(anyJob)

	p, err := c.LoadUnit(ctx, name)
	if err != nil {
		return err
	}
	path.Store(&p)
	for {
		st, err := readState(ctx, c, name, p, system)
		if err != nil {
			return err
		}
		if done, err := verdict(st); done {
			return withResult(ctx, c, p, err)
		}
		var jobs <-chan *sdbus.Message
		if st.idle() {
			jobs = anyJob
		}
		select {
		case m := <-changed:
			// The signal carries the new state: the transition to
			// active ends the wait without another call, which
			// systemd, busy starting the unit's processes, answers
			// 35-60 ms later under TCG (the signal comes 15-30 ms
			// after the transition).
			// (Signals of other units pass the filter until p is
			// known: they only wake the loop.)
			if iface, props, _, ok := sdbus.PropertiesChanged(m); ok && m.Path == p && iface == sdbus.UnitInterface &&
				(props["ActiveState"] == "active" || props["ActiveState"] == "reloading") {
				return nil
			}
		case <-ownJob:
		case <-jobs:
		case <-c.Done():
			return fmt.Errorf("wait for unit %s: %w", name, sdbus.ErrClosed)
		case <-ctx.Done():
			return &unitPending{state: st, err: fmt.Errorf("wait for unit %s: %w", name, ctx.Err())}
		}
	}
}

// verdict says whether st ends the wait, and how.
func verdict(st unitState) (done bool, err error) {
	switch {
	case st.active == "active" || st.active == "reloading":
		return true, nil
	case st.active == "failed" && st.job == 0:
		return true, &unitFailed{reason: fmt.Sprintf("unit %s failed", st.name), failed: true}
	case st.load == "not-found" && st.job == 0:
		return true, &unitFailed{reason: fmt.Sprintf("unit %s not found: no unit file in the guest "+
			"(declare it with machine(units = ...), or install the package that has it)", st.name), notFound: true}
	case (st.load == "error" || st.load == "bad-setting") && st.job == 0:
		return true, &unitFailed{reason: fmt.Sprintf("unit %s could not be loaded: %s", st.name, st.loadError)}
	case st.load == "masked" && st.job == 0:
		// No job can start it: waiting for the manager's jobs to end
		// (below) would only delay the error.
		return true, &unitFailed{reason: fmt.Sprintf("unit %s is masked: nothing can start it%s", st.name, maskHint(st))}
	case st.idle() && st.managerJobsReadable && st.managerJobs == 0:
		switch {
		case st.conditionFailed:
			return true, &unitFailed{reason: fmt.Sprintf("unit %s was skipped: a start condition was not met "+
				"(see its status below)", st.name)}
		case st.assertFailed:
			return true, &unitFailed{reason: fmt.Sprintf("unit %s was not started: a start assertion failed "+
				"(see its status below)", st.name)}
		}
		return true, &unitFailed{reason: fmt.Sprintf("unit %s is inactive and no job is pending: nothing will start it "+
			"(enable it with machine(enable = ...) or start it with start_job)", st.name)}
	}
	return false, nil
}

// maskRoot is where the mask links are looked for (a var for tests).
var maskRoot = "/"

// maskedBy finds the link that masks the system unit called name: a link
// to /dev/null named as the unit, or as its template. "" when there is
// none.
func maskedBy(name string) string {
	names := []string{name}
	if t := agentproto.TemplateOf(name); t != "" {
		names = append(names, t)
	}
	for _, dir := range agentproto.UnitDirs {
		for _, n := range names {
			p := filepath.Join("/", dir, n)
			if target, err := os.Readlink(filepath.Join(maskRoot, p)); err == nil && target == "/dev/null" {
				return p
			}
		}
	}
	return ""
}

// maskHint says who masked the unit and what to do about it.
func maskHint(st unitState) string {
	switch {
	case st.maskedBy == "":
		return ""
	case filepath.Dir(st.maskedBy) == unitDir:
		return fmt.Sprintf(" (vmlab masks %s by default: %s -> /dev/null; name it in machine(enable = [...]) to unmask it)",
			filepath.Base(st.maskedBy), st.maskedBy)
	}
	return fmt.Sprintf(" (%s -> /dev/null, the root's own mask)", st.maskedBy)
}

// withResult adds a failed service's Result ("exit-code", "timeout", ...)
// to err, as systemctl status shows it.
func withResult(ctx context.Context, c *sdbus.Conn, path sdbus.ObjectPath, err error) error {
	var failed *unitFailed
	if !errors.As(err, &failed) || !failed.failed {
		return err
	}
	if r, rerr := c.Property(ctx, path, sdbus.ServiceInterface, "Result"); rerr == nil && r != "" {
		failed.reason += fmt.Sprintf(" (result: %v)", r)
	}
	return err
}

// readState reads the unit's state: ActiveState alone when that ends the
// wait (one call: the common case of a unit already active), everything
// verdict needs otherwise.
func readState(ctx context.Context, c *sdbus.Conn, name string, path sdbus.ObjectPath, system bool) (unitState, error) {
	st := unitState{name: name}
	active, err := c.Property(ctx, path, sdbus.UnitInterface, "ActiveState")
	if err != nil {
		return st, err
	}
	if st.active, _ = active.(string); st.active == "active" {
		st.load, st.sub = "loaded", "running"
		return st, nil
	}
	props, err := c.Properties(ctx, path, sdbus.UnitInterface)
	if err != nil {
		return st, err
	}
	st.active, _ = props["ActiveState"].(string)
	st.load, _ = props["LoadState"].(string)
	st.sub, _ = props["SubState"].(string)
	if job, ok := props["Job"].([]any); ok && len(job) == 2 {
		st.job, _ = job[0].(uint32)
	}
	if le, ok := props["LoadError"].([]any); ok && len(le) == 2 {
		st.loadError, _ = le[1].(string)
	}
	// A result is false until its check runs: only one with a timestamp
	// says something.
	if ok, _ := props["ConditionResult"].(bool); !ok {
		at, _ := props["ConditionTimestampMonotonic"].(uint64)
		st.conditionFailed = at != 0
	}
	if ok, _ := props["AssertResult"].(bool); !ok {
		at, _ := props["AssertTimestampMonotonic"].(uint64)
		st.assertFailed = at != 0
	}
	if st.load == "masked" && system {
		st.maskedBy = maskedBy(name)
	}
	if st.idle() {
		n, err := c.Property(ctx, sdbus.ManagerPath, sdbus.ManagerInterface, "NJobs")
		if err != nil {
			return st, err
		}
		st.managerJobs, st.managerJobsReadable = n.(uint32)
	}
	return st, nil
}

// unitDetails is what explains a unit's failure: `systemctl status` and
// its last journal lines, each under the command that printed it
// (--lines=0: the status would show the journal's last lines again). The
// commands get detailsTimeout, past ctx's end (a timed-out wait is
// explained too); a canceled wait gets none.
func unitDetails(ctx context.Context, m manager, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detailsTimeout)
	defer cancel()
	status := []string{"systemctl", "status", "--no-pager", "--lines=0", name}
	journal := []string{"journalctl", "-u", name, "-n", strconv.Itoa(journalTail), "--no-pager"}
	statusUser, shown := "", "$ "+strings.Join(status, " ")
	var env []string
	if m.user != nil {
		// systemctl --user reaches the manager of the user running it.
		status = []string{"systemctl", "--user", "status", "--no-pager", "--lines=0", name}
		statusUser, shown = m.user.Username, "$ "+strings.Join(status, " ")+"  # as "+m.user.Username
		env = []string{"XDG_RUNTIME_DIR=/run/user/" + m.user.Uid}
		// Root reads the whole journal; the user may not.
		journal = []string{"journalctl", "-n", strconv.Itoa(journalTail), "--no-pager",
			"_UID=" + m.user.Uid, "_SYSTEMD_USER_UNIT=" + name, "+", "_UID=" + m.user.Uid, "USER_UNIT=" + name}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n", shown, detailCommand(ctx, status, statusUser, env))
	fmt.Fprintf(&b, "$ %s\n%s", strings.Join(journal, " "), detailCommand(ctx, journal, "", nil))
	return b.String()
}

// detailCommand runs the commands of unitDetails (a var for tests).
var detailCommand = runDetail

// runDetail runs argv and returns what it printed (or why it could not
// run). Its exit status is not an error: systemctl status exits 3 for a
// unit that is not active.
func runDetail(ctx context.Context, argv []string, userName string, env []string) string {
	cmd, err := command(ctx, &agentproto.Exec{Argv: argv, User: userName, Env: env, Dir: "/"}, posixShell)
	if err != nil {
		return err.Error()
	}
	cmd.WaitDelay = outputLinger
	out := &limitedBuffer{limit: WaitOutputLimit / 4}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	if err != nil {
		return err.Error()
	}
	if err := cmd.Wait(); ctx.Err() != nil {
		fmt.Fprintf(out, "(stopped after %v: %v)\n", detailsTimeout, err)
	}
	return strings.TrimRight(out.b.String(), "\n")
}
