package agentproto

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the protocol version. The agent says it in Hello; the host refuses
// an agent that speaks another one (a stale initramfs, say). Version 2 added
// the Ack frame and windows on Stdin and Data streams, version 3 OpSetup,
// version 4 commands on a terminal and streamed commands (Exec.TTY, Argv,
// Login, OutputWindow; the Resize and Signal frames; Result.SignalNumber),
// version 5 systemd guests (BootConfig.Init, Request.Units and Enable, and
// WaitUnit answered by systemd with Wait.User for user units), version 6
// the handover: a systemd guest's agent says hello again after OpServices,
// version 7 the text of virtual terminals (OpTTYText, WaitTTY), version 8
// X displays (WaitX, WaitWindow, OpXWindows, Wait.Display, Request.Display),
// version 9 the Notice frame (a service's exit, told unasked), version 10
// snapshot boots (the Snapshot and Restore frames, SnapshotParam), version
// 11 the keyboard's acknowledgements (WaitKeys, Wait.Keys).
const Version = 11

// BashPath is where the guest's test commands find bash (their strict
// shell), and the host's file the initramfs copies for the fork server.
const BashPath = "/bin/bash"

// DefaultPath is the PATH commands get in the guest.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// PortName is the virtio-serial port name the agent opens in the guest.
const PortName = "org.vmlab.agent"

// Hello is the agent's first frame: it is ready to take requests.
type Hello struct {
	Version int    `json:"version"`
	Kernel  string `json:"kernel"` // uname release
	// Stages are the guest's uptimes at the milestones of its boot, in order,
	// such as "modules", "root", "serve". They show where boot time goes.
	Stages []Stage `json:"stages"`
}

// Stage is one boot milestone.
type Stage struct {
	Name   string        `json:"name"`
	Uptime time.Duration `json:"uptime"`
}

// Op names what a request asks for.
type Op string

// Ops.
const (
	OpExec     Op = "exec"     // run a command: Exec
	OpWait     Op = "wait"     // wait for a condition: Wait
	OpCopyIn   Op = "copy-in"  // host sends a tar stream in Data frames, agent unpacks at Path
	OpCopyOut  Op = "copy-out" // agent sends Path as a tar stream in Data frames
	OpPowerOff Op = "poweroff" // stop all processes, sync, power off
	OpReboot   Op = "reboot"   // the same, then reboot
	OpNetwork  Op = "network"  // configure NICs and /etc/hosts: Network
	OpServices Op = "services" // start and supervise the declared services: Services
	OpSetup    Op = "setup"    // apply users, groups, modules, sysctls, files: Setup, contents in Data frames
	// OpTTYText reads the text of virtual terminal VT (1..MaxVT) from
	// /dev/vcsaVT; the Result's Output holds it (see Request.VT).
	OpTTYText Op = "tty-text"
	// OpXWindows lists the names of the windows on X display Display
	// (Request.Display): the Result's Output holds one name a line, in the
	// order of the window tree, windows without a name left out.
	OpXWindows Op = "x-windows"
)

// MaxVT is the highest virtual terminal number Linux has (MAX_NR_CONSOLES).
const MaxVT = 63

// Service is a program the agent starts at boot and supervises (fast mode's
// stand-in for a systemd unit).
type Service struct {
	Name    string   `json:"name"`
	Command string   `json:"command"` // run with /bin/sh -c
	User    string   `json:"user,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Env     []string `json:"env,omitempty"`
	// Ready says when the service counts as up: a TCP port accepts, a file
	// exists, or a line of its output matches a regular expression. With
	// none, it is up once started.
	ReadyPort int    `json:"ready_port,omitempty"`
	ReadyFile string `json:"ready_file,omitempty"`
	ReadyLog  string `json:"ready_log,omitempty"`
	// Restart is "no" (default), "on-failure" or "always".
	Restart string `json:"restart,omitempty"`
}

// Request opens a stream. Exactly one of the op's fields is set.
type Request struct {
	Op   Op       `json:"op"`
	Exec *Exec    `json:"exec,omitempty"`
	Wait *Wait    `json:"wait,omitempty"`
	Net  *Network `json:"net,omitempty"`
	// Services for OpServices.
	Services []Service `json:"services,omitempty"`
	Setup    *Setup    `json:"setup,omitempty"`
	Path     string    `json:"path,omitempty"` // copy-in destination, copy-out source
	// Units and Enable complete OpServices for a guest whose init is
	// systemd: the unit files to install and the units to start at boot
	// (spec.Machine's fields of the same names). Services are then
	// rendered as units too, and the request returns once systemd has the
	// start of multi-user.target queued.
	Units  []UnitFile `json:"units,omitempty"`
	Enable []string   `json:"enable,omitempty"`
	// VT is the virtual terminal OpTTYText reads, 1..MaxVT ("tty1" is 1).
	// The text is NixOS's (`fold -w COLS /dev/vcsN`): every row of the
	// screen at its full width, trailing blanks kept, rows joined by
	// newlines, none after the last; the agent allocates a terminal nothing has opened yet (its screen is
	// blank), as opening /dev/ttyVT would.
	VT int `json:"vt,omitempty"`
	// Display is the X display OpXWindows reads, ":0" when empty.
	Display string `json:"display,omitempty"`
}

// UnitFile is a systemd unit file: its name ("web.service") and its text.
type UnitFile struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// MaxArg is the longest command (and environment entry) the guest can run:
// Linux takes at most 32 pages, 131072 bytes with the NUL, in one argument
// or environment string (MAX_ARG_STRLEN), and a command is sh -c's
// argument.
const MaxArg = 32*4096 - 1

// Exec runs Command with the shell's -c in its own process group, or Argv,
// or the user's login shell.
type Exec struct {
	Command string `json:"command"`
	// Argv, when set, is run as it is, not through a shell; a program name
	// without a slash is looked up in DefaultPath.
	Argv []string `json:"argv,omitempty"`
	// Login runs the user's login shell (bash -l, else sh -l) instead of
	// Command; it reads its commands from stdin (or the terminal).
	Login bool `json:"login,omitempty"`
	// TTY, when set, runs the command on a new pseudo-terminal, as its
	// controlling terminal in a new session: stdout and stderr both arrive
	// as Stdout frames, StdinEOF types the terminal's EOF character, and
	// Signal frames go to the terminal's foreground process group.
	TTY *TTY `json:"tty,omitempty"`
	// OutputWindow sends Stdout and Stderr under the stream's window (the
	// host Acks them as its consumer writes them out), so a host that
	// cannot keep up (a paused terminal) slows the command down instead of
	// queueing its output without bound.
	OutputWindow bool     `json:"output_window,omitempty"`
	Env          []string `json:"env,omitempty"`  // KEY=VALUE added to the default environment
	User         string   `json:"user,omitempty"` // empty: root
	Dir          string   `json:"dir,omitempty"`  // empty: the user's home
	// Stdin says whether Stdin frames follow; without it stdin is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Timeout, when positive, is enforced in the guest: at the deadline the
	// whole process group is killed and the Result says TimedOut.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// WaitKind names a condition the agent waits for.
type WaitKind string

// Wait kinds.
const (
	WaitFile         WaitKind = "file"          // Path exists
	WaitPortOpen     WaitKind = "port-open"     // a TCP connect to Addr:Port succeeds
	WaitPortClosed   WaitKind = "port-closed"   // a TCP connect to Addr:Port is refused
	WaitUnixSocket   WaitKind = "unix-socket"   // a connect to the socket at Path succeeds
	WaitUnixDatagram WaitKind = "unix-datagram" // a connect to the datagram socket at Path succeeds
	WaitCommandOK    WaitKind = "command-ok"    // Command exits 0
	WaitCommandFails WaitKind = "command-fails" // Command exits non-zero
	// WaitTTY: the text of virtual terminal VT (as OpTTYText reads it)
	// matches Regex, Go's regexp syntax. The agent reads it again each
	// time the kernel says the screen changed, so the wait ends as soon
	// as the text is there; the Result's Output is the text last read,
	// the matching one or, at the timeout, the one that did not match.
	WaitTTY WaitKind = "tty"
	// WaitX: the X server of Display accepts a client: the agent connects
	// to its socket and the X11 connection setup succeeds (with the
	// server's own authorization cookie when it asks for one). The
	// Result's Output names the server (vendor and release).
	WaitX WaitKind = "x"
	// WaitWindow: a window on X display Display has a name (WM_NAME or
	// _NET_WM_NAME) that matches Regex, Go's regexp syntax. The agent
	// reads the window tree again each time the server reports a window
	// created, mapped, renamed or destroyed; the Result's Output is the
	// names last read, one a line (as OpXWindows gives them).
	WaitWindow WaitKind = "window"
	// WaitUnit: the service called Path is ready, or every service when
	// Path is empty; fails at once when one has exited and will not be
	// restarted.
	WaitUnit WaitKind = "unit"
	// WaitKeys: the guest's PS/2 keyboard has delivered at least Keys key
	// events (presses and releases, as its driver reports them) since the
	// agent first counted them; the Result's Output is the count, in
	// decimal, at the end of the wait. A guest whose keyboard cannot be
	// counted (no evdev) answers with an Error naming NoKeyCount.
	WaitKeys WaitKind = "keys"
)

// NoKeyCount is in the Error of a WaitKeys the agent cannot count keys
// for: the host then types without the guest's acknowledgements.
const NoKeyCount = "no key count"

// Wait asks the agent to check a condition until it holds or Timeout passes.
type Wait struct {
	Kind    WaitKind `json:"kind"`
	Path    string   `json:"path,omitempty"`
	Addr    string   `json:"addr,omitempty"` // default localhost
	Port    int      `json:"port,omitempty"`
	Command string   `json:"command,omitempty"`
	User    string   `json:"user,omitempty"`
	VT      int      `json:"vt,omitempty"`    // WaitTTY's terminal, 1..MaxVT
	Regex   string   `json:"regex,omitempty"` // WaitTTY's and WaitWindow's pattern
	// Display is WaitX's and WaitWindow's X display, ":0" when empty.
	Display string `json:"display,omitempty"`
	// Keys is the count of key events WaitKeys waits for.
	Keys    int64         `json:"keys,omitempty"`
	Timeout time.Duration `json:"timeout"`
	// Interval between checks; zero picks the kind's default (short for
	// files and ports, longer for commands, which start a shell each time).
	Interval time.Duration `json:"interval,omitempty"`
}

// Result closes a stream.
type Result struct {
	// Exit is the command's exit status; -1 when it was killed by a signal.
	Exit   int    `json:"exit"`
	Signal string `json:"signal,omitempty"` // the killing signal's description, "killed"
	// SignalNumber is the number of the signal that killed the command.
	SignalNumber int `json:"signal_number,omitempty"`
	// TimedOut says the guest-side deadline passed (the command was killed or
	// the wait condition never held).
	TimedOut bool `json:"timed_out,omitempty"`
	// Canceled says the host asked to stop.
	Canceled bool `json:"canceled,omitempty"`
	// Detached says processes the command started kept its output open after
	// it exited; their later output is not captured.
	Detached bool `json:"detached,omitempty"`
	// Output of the last check of a command wait, the services' last
	// lines of a failed unit wait, or a terminal's text (OpTTYText,
	// WaitTTY).
	Output string `json:"output,omitempty"`
	// Tries is the number of checks a wait made.
	Tries int `json:"tries,omitempty"`
	// Error is set when the agent could not do the request at all (no such
	// user, copy source missing, bad request).
	Error string `json:"error,omitempty"`
	// Elapsed is the time the work took in the guest.
	Elapsed time.Duration `json:"elapsed"`
}

// Encode marshals a message for a frame payload.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every message type here is plain data; failing to marshal one is a bug.
		panic(fmt.Sprintf("agentproto: encode %T: %v", v, err))
	}
	return b
}

// Decode unmarshals a frame payload into v.
func Decode(f Frame, v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("%w: decode %v: %v", ErrMalformed, f.Type, err)
	}
	return nil
}
