package machine_test

// Tests of Machine against a fake QEMU: the test binary itself, started in
// QEMU's place, connects to the QMP and agent sockets from its command line
// and plays one scenario. They run in milliseconds and need no kernel.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

const fakeEnv = "VMLAB_FAKE_QEMU"

// floodLines is what the flood mode prints: ~900 KB, 14 times a pipe's
// 64 KiB, so a console reader that blocks stalls the guest.
const floodLines = 20000

func init() {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
}

// fakeQEMU impersonates QEMU in one of these modes:
//
//	serve    answer QMP and serve the agent on the host (for a systemd
//	         guest, saying hello again after the units, as after the
//	         handover)
//	selfoff  serve, and power off as a guest does by itself (the kernel's
//	         line, a clean exit) at SIGUSR1
//	garbage  say hello, then send bytes that are not a frame
//	silent   connect and never say hello
//	exit     print an error on stderr and exit 1 before connecting
//	panic    print a kernel panic and a long stack trace on the console and
//	         exit (-no-reboot turns the panic's reset into a clean exit)
//	oops     print an oops (its BUG line first) and a trace, and exit
//	oom      print an OOM kill and exit
//	triple   exit cleanly without a word: QEMU 7.2 with -no-reboot on a
//	         triple fault (measured: exit 0, nothing on stderr)
//	poweroff print the kernel's power-off line and exit cleanly
//	sysrqreset print sysrq's reset line and exit cleanly
//	badqmp   answer QMP with garbage, and live on
//	flood    print floodLines console lines and exit
//	setupdie say hello, then die (a kernel panic) at the first request:
//	         a guest that dies while the machine is set up
//	handoverdie, handoversilent  say hello, answer every request with
//	         success, and after the units (a systemd guest's handover) die
//	         with a kernel panic, or never say hello again
//	waitecho say hello, then answer each wait with an error that echoes
//	         it, and any other request with success (units_test.go); a
//	         systemd guest's says hello again after the units
//	snapok   a snapshot boot stops at the snapshot point (its memory file
//	         made, its state migrated), a restore loads (after a simulated
//	         load time) and serves (snapshot_fake_test.go); else serve
//	snapfail as snapok, but a restore's QEMU fails its load and exits
func fakeQEMU(mode string, args []string) int {
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: -device virtio-9p-pci: cannot open /nonexistent")
		return 1
	}
	if code, ok := fakeSnapshotQEMU(mode, args); ok {
		return code
	}
	qmpConn, agentConn, dir := fakeConnect(args)
	if qmpConn == nil {
		return 1
	}
	if mode == "badqmp" {
		fmt.Fprintln(qmpConn, "this is not QMP")
		select {}
	}
	go fakeQMP(qmpConn, dir)
	hello := agentproto.Hello{Version: agentproto.Version, Kernel: "fake"}
	switch {
	case mode == "serve" && systemdArgs(args):
		serveHandover(agentConn, hello)
		return 0
	case mode == "handoverdie" || mode == "handoversilent":
		failHandover(agentConn, hello, mode == "handoverdie")
		return 0
	case mode == "waitecho":
		waitEcho(agentConn, hello, systemdArgs(args))
		return 0
	}
	switch mode {
	case "serve":
		agent.Serve(context.Background(), agentConn, hello)
	case "selfoff":
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go agent.Serve(context.Background(), agentConn, hello)
		<-usr1
		fmt.Println("[    3.210] reboot: Power down")
		return 0
	case "garbage":
		w := agentproto.NewWriter(agentConn)
		w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
		agentproto.NewReader(agentConn).ReadFrame()
		agentConn.Write([]byte("\x00\x01garbage that is not a frame"))
		select {}
	case "silent":
		select {}
	case "setupdie":
		agentproto.NewWriter(agentConn).WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
		agentproto.NewReader(agentConn).ReadFrame()
		fmt.Println("[    2.345] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b")
		return 0
	case "panic":
		fmt.Println("[    1.234] Kernel panic - not syncing: VFS: Unable to mount root fs")
		printTrace()
		return 0
	case "oops":
		fmt.Println("[    1.234] BUG: kernel NULL pointer dereference, address: 0000000000000000")
		fmt.Println("[    1.234] #PF: supervisor read access in kernel mode")
		fmt.Println("[    1.234] Oops: 0000 [#1] PREEMPT SMP NOPTI")
		printTrace()
		return 0
	case "oom":
		fmt.Println("[    9.876] Out of memory: Killed process 1 (vmlab) total-vm:1234kB, anon-rss:567kB")
		return 0
	case "poweroff":
		fmt.Println("[    3.210] reboot: Power down")
		return 0
	case "sysrqreset":
		fmt.Println("[    3.210] sysrq: Resetting")
		return 0
	case "triple":
		return 0
	case "flood":
		w := bufio.NewWriter(os.Stdout)
		for i := range floodLines {
			fmt.Fprintf(w, "[    1.234] console line %d of a chatty guest\n", i)
		}
		w.Flush()
		return 0
	}
	return 0
}

// systemdArgs reports whether QEMU's arguments boot a guest whose init is
// systemd (the kernel command line's boot configuration says so).
func systemdArgs(args []string) bool {
	for i, a := range args {
		if a == "-append" && i+1 < len(args) {
			cfg, err := agentproto.ParseBootConfig(args[i+1])
			return err == nil && cfg.Init == spec.InitSystemd
		}
	}
	return false
}

// serveHandover serves the agent on the host as a systemd guest's agents
// do: after its answer to the machine's units (OpServices), it says hello
// again, as the agent systemd starts after the handover would.
func serveHandover(conn net.Conn, hello agentproto.Hello) {
	host, guest := net.Pipe()
	go agent.Serve(context.Background(), guest, hello)
	var mu sync.Mutex
	units := map[uint32]bool{} // the streams of OpServices requests
	go func() {
		r, w := agentproto.NewReader(conn), agentproto.NewWriter(host)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				host.Close()
				return
			}
			var req agentproto.Request
			if f.Type == agentproto.TRequest && agentproto.Decode(f, &req) == nil && req.Op == agentproto.OpServices {
				mu.Lock()
				units[f.Stream] = true
				mu.Unlock()
			}
			w.WriteFrame(f.Type, f.Stream, f.Payload)
		}
	}()
	r, w := agentproto.NewReader(host), agentproto.NewWriter(conn)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		w.WriteFrame(f.Type, f.Stream, f.Payload)
		mu.Lock()
		handover := f.Type == agentproto.TResult && units[f.Stream]
		mu.Unlock()
		if handover {
			w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
		}
	}
}

// failHandover is an agent whose handover to systemd fails: it answers
// every request with success until the units, then the guest dies (die)
// or its systemd never starts the agent.
func failHandover(conn net.Conn, hello agentproto.Hello, die bool) {
	w, r := agentproto.NewWriter(conn), agentproto.NewReader(conn)
	w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		var req agentproto.Request
		if f.Type != agentproto.TRequest || agentproto.Decode(f, &req) != nil {
			continue
		}
		w.WriteFrame(agentproto.TResult, f.Stream, agentproto.Encode(agentproto.Result{}))
		if req.Op != agentproto.OpServices {
			continue
		}
		if !die {
			select {}
		}
		fmt.Println("[    3.456] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
		return
	}
}

// traceLines is how long a trace the panic and oops modes print: more than
// an error's console tail.
const traceLines = 60

func printTrace() {
	for i := range traceLines {
		fmt.Printf("[    1.235]  frame_%d+0x1a/0x30\n", i)
	}
}

// fakeQMP answers every command with success. It logs each command but
// the handshake, as a JSON line, to fakeQMPLog in dir, and when it came
// (Unix nanoseconds, a line each) to fakeQMPTimes; screendump writes
// fakeScreen to the file named, and human-monitor-command returns
// "fake: " and the command line.
func fakeQMP(c net.Conn, dir string) {
	fmt.Fprintln(c, `{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}`)
	dec := json.NewDecoder(bufio.NewReader(c))
	log, _ := os.OpenFile(filepath.Join(dir, fakeQMPLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	times, _ := os.OpenFile(filepath.Join(dir, fakeQMPTimes), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	dumps := 0
	for {
		var req struct {
			ID        json.RawMessage `json:"id"`
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if dec.Decode(&req) != nil {
			return
		}
		ret, after := "{}", func() string { return "" }
		switch req.Execute {
		case "migrate", "migrate-incoming":
			after = fakeMigrate(req.Execute, req.Arguments)
		case "cont": // the take's QEMU runs on (snapshot_fake_test.go)
			fakeLoaded.Store(time.Now().UnixNano())
		case "qmp_capabilities":
		case "screendump":
			var a struct{ Filename string }
			json.Unmarshal(req.Arguments, &a)
			os.WriteFile(a.Filename, fakeScreenAt(dumps), 0o600)
			dumps++
		case "human-monitor-command":
			var a struct {
				Line string `json:"command-line"`
			}
			json.Unmarshal(req.Arguments, &a)
			b, _ := json.Marshal("fake: " + a.Line + "\r\n")
			ret = string(b)
		}
		if req.Execute != "qmp_capabilities" && log != nil {
			fmt.Fprintf(log, "%s %s\n", req.Execute, req.Arguments)
			fmt.Fprintln(times, time.Now().UnixNano())
		}
		fmt.Fprintf(c, "{\"return\": %s, \"id\": %s}\n", ret, req.ID)
		if ev := after(); ev != "" {
			fmt.Fprintln(c, ev)
		}
	}
}

// fakeQMPLog is the file in the machine's directory where fakeQMP logs
// the commands it was sent; fakeScreen is what its screendump writes,
// unless fakeScreensEnv lists files (separated by os.PathListSeparator):
// then the n-th screendump writes the n-th file, and the last one again
// after the list ends.
const (
	fakeQMPLog     = "fake-qmp.log"
	fakeQMPTimes   = "fake-qmp-times.log"
	fakeScreen     = "\x89PNG fake"
	fakeScreensEnv = "VMLAB_FAKE_SCREENS"
)

// fakeScreenAt is what screendump number n (from 0) writes.
func fakeScreenAt(n int) []byte {
	list := os.Getenv(fakeScreensEnv)
	if list == "" {
		return []byte(fakeScreen)
	}
	files := filepath.SplitList(list)
	b, _ := os.ReadFile(files[min(n, len(files)-1)])
	return b
}

func fakeMachine(t *testing.T, mode string) *machine.Machine {
	t.Helper()
	return fakeMachineConfig(t, mode, machine.Config{})
}

// fakeMachineConfig is fakeMachine with more of the configuration.
func fakeMachineConfig(t *testing.T, mode string, cfg machine.Config) *machine.Machine {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	boot := &machine.Boot{
		Kernel: &kernel.Kernel{Vmlinux: "/dev/null"}, Initramfs: "/dev/null",
		QEMU: exe, Accel: qemu.Accel{Name: "tcg", Why: "fake"},
	}
	cfg.Name, cfg.Boot, cfg.BootTimeout = "fake", boot, 2*time.Second
	m, err := machine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestFakeServe(t *testing.T) {
	m := fakeMachine(t, "serve")
	out, err := m.Succeed(t.Context(), "echo lazy start")
	if err != nil || out != "lazy start\n" {
		t.Fatalf("got %q, %v", out, err)
	}
	var exitErr *machine.ExitError
	if _, err := m.Succeed(t.Context(), "exit 4"); !errors.As(err, &exitErr) || exitErr.Status != 4 {
		t.Errorf("got %v, want an ExitError with status 4", err)
	}
	_, err = m.Succeed(t.Context(), "sleep 30", machine.Timeout(100*time.Millisecond))
	var te *machine.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `fake: command "sleep 30": timed out`) {
		t.Errorf("got %v, want a TimeoutError naming the machine and command", err)
	}
}

// TestFakeHandoverFailures: a systemd guest that dies after its units, or
// whose systemd never starts the agent, fails the boot as any boot does,
// naming the step. Before the handover, the boot ended with the units.
func TestFakeHandoverFailures(t *testing.T) {
	// The guest that dies is seen first either by the agent's channel
	// closing or by QEMU's exit: both are said as a closed channel,
	// with the panic.
	for _, tt := range []struct{ mode, want string }{
		{"handoverdie", `fake: boot: wait for the agent under systemd: (qemu exited before systemd started the agent: )?` +
			`agent channel closed(: the guest closed it)?: machine is down: kernel panic "Attempted to kill init! exitcode=0x00000100"; qemu exited`},
		{"handoversilent", `fake: boot \(waiting for the agent\): timed out after 2s`},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			m := fakeMachineConfig(t, tt.mode, machine.Config{Machine: spec.Machine{Init: spec.InitSystemd}})
			err := m.Start(t.Context())
			if err == nil || !regexp.MustCompile(tt.want).MatchString(err.Error()) {
				t.Errorf("got %v, want an error matching %q", err, tt.want)
			}
		})
	}
}

func TestFakeFailures(t *testing.T) {
	tests := []struct {
		mode     string
		wantType string
		wantText []string
		// within bounds the report when nothing else (a timeout) is waited
		// for; zero: 10 s.
		within time.Duration
	}{
		{"exit", "down", []string{"fake", "exit status 1", "cannot open /nonexistent"}, 0},
		{"panic", "down", []string{"fake", `machine is down: kernel panic "VFS: Unable to mount root fs"; qemu exited`,
			"Kernel panic - not syncing", "...", fmt.Sprintf("frame_%d+", traceLines-1)}, 0},
		{"oops", "down", []string{`kernel oops "BUG: kernel NULL pointer dereference, address: 0000000000000000"`,
			"Oops: 0000 [#1]"}, 0},
		{"oom", "down", []string{`out of memory "Out of memory: Killed process 1 (vmlab)`}, 0},
		{"triple", "down", []string{"the CPU reset with no word from the kernel (a triple fault?); qemu exited"}, 0},
		{"silent", "timeout", []string{"fake", "boot (waiting for the agent)", "timed out"}, 0},
		{"garbage", "down", []string{"fake", "malformed frame"}, 0},
		// Before the fix: a nil-pointer panic in callError, the process
		// not being the machine's yet.
		{"setupdie", "down", []string{"fake", "set up the machine", `kernel panic "Attempted to kill init! exitcode=0x0000000b"; qemu exited`}, time.Second},
		// A QEMU that lives on is stopped at once, not after a 2 s wait
		// for an exit that is not coming (before the fix: 2.0 s).
		{"badqmp", "down", []string{"fake", "connect to qmp"}, time.Second},
	}
	// The setup gives the boot a step to die in.
	setup := machine.Setup{Files: []machine.File{{Path: "/etc/x", Content: "x"}}}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			m := fakeMachineConfig(t, tt.mode, machine.Config{Machine: spec.Machine{Setup: setup}})
			start := time.Now()
			_, err := m.Succeed(t.Context(), "true")
			var de *machine.DownError
			var te *machine.TimeoutError
			switch {
			case err == nil:
				t.Fatal("got nil error")
			case tt.wantType == "down" && !errors.As(err, &de):
				t.Fatalf("got %T %v, want a DownError", err, err)
			case tt.wantType == "timeout" && !errors.As(err, &te):
				t.Fatalf("got %T %v, want a TimeoutError", err, err)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not contain %q:\n%v", s, err)
				}
			}
			within := cmp.Or(tt.within, 10*time.Second)
			if d := time.Since(start); d > within {
				t.Errorf("took %v to report, want at most %v", d, within)
			}
			if m.QEMUPid() != 0 {
				t.Errorf("qemu still running after the failure")
			}
		})
	}
}

// TestFakeDownReason: the console names why a machine went down, and the
// error's console tail keeps the line that says so however long the trace
// after it. A power-off the kernel announced names nothing.
func TestFakeDownReason(t *testing.T) {
	tests := []struct {
		mode       string
		wantReason string
		wantTail   []string // the tail's first lines
	}{
		{"panic", `kernel panic "VFS: Unable to mount root fs"`,
			[]string{"[    1.234] Kernel panic - not syncing: VFS: Unable to mount root fs", "..."}},
		{"oops", `kernel oops "BUG: kernel NULL pointer dereference, address: 0000000000000000"`,
			[]string{"[    1.234] BUG: kernel NULL pointer dereference, address: 0000000000000000",
				"[    1.234] Oops: 0000 [#1] PREEMPT SMP NOPTI", "..."}},
		{"triple", "the CPU reset with no word from the kernel (a triple fault?)", nil},
		{"poweroff", "", []string{"[    3.210] reboot: Power down"}},
		{"sysrqreset", "", []string{"[    3.210] sysrq: Resetting"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			m := fakeMachine(t, tt.mode)
			_, err := m.Succeed(t.Context(), "true")
			var de *machine.DownError
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want a DownError", err, err)
			}
			if de.Reason != tt.wantReason {
				t.Errorf("got reason %q, want %q", de.Reason, tt.wantReason)
			}
			if len(de.Console) < len(tt.wantTail) {
				t.Fatalf("got tail %q, want it to start with %q", de.Console, tt.wantTail)
			}
			if got := de.Console[:len(tt.wantTail)]; !slices.Equal(got, tt.wantTail) {
				t.Errorf("got tail starting %q, want %q", got, tt.wantTail)
			}
			if len(tt.wantTail) > 0 && tt.wantTail[len(tt.wantTail)-1] == "..." {
				last := fmt.Sprintf("[    1.235]  frame_%d+0x1a/0x30", traceLines-1)
				if got := de.Console[len(de.Console)-1]; got != last {
					t.Errorf("got last tail line %q, want %q", got, last)
				}
				if got, want := len(de.Console), len(tt.wantTail)+20; got != want {
					t.Errorf("got %d tail lines, want %d (the reasons, ..., the last 20)", got, want)
				}
			}
		})
	}
}

// fakeOpts reads a QEMU option list's key=value parts (the fakes' paths
// hold no commas).
func fakeOpts(list string) map[string]string {
	o := map[string]string{}
	for _, kv := range strings.Split(list, ",") {
		k, v, _ := strings.Cut(kv, "=")
		o[k] = v
	}
	return o
}

// fakeConnect connects to the QMP and agent sockets named in args.
func fakeConnect(args []string) (qmpConn, agentConn net.Conn, dir string) {
	paths := map[string]string{}
	for i, a := range args {
		if a == "-chardev" && i+1 < len(args) && strings.HasPrefix(args[i+1], "socket,") {
			o := fakeOpts(args[i+1])
			paths[o["id"]] = o["path"]
		}
	}
	q, err := net.Dial("unix", paths["qmp"])
	if err != nil {
		return nil, nil, ""
	}
	ag, err := net.Dial("unix", paths["agent"])
	if err != nil {
		return nil, nil, ""
	}
	return q, ag, filepath.Dir(paths["qmp"])
}
