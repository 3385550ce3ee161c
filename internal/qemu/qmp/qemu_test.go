package qmp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

// TestRealQEMU speaks to a real QEMU with no machine at all (-machine none,
// paused by -S), which starts in well under a second even under TCG.
func TestRealQEMU(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	path := qmptest.SocketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	defer ln.Close()
	qemu := startQEMU(t, ctx, bin,
		"-nodefaults", "-no-user-config", "-display", "none", "-S", "-machine", "none",
		"-chardev", "socket,id=qmp,path="+path, "-mon", "chardev=qmp,mode=control")

	conn := accept(t, qemu.ctx, ln)
	c, err := qmp.NewClient(qemu.ctx, conn)
	if err != nil {
		t.Fatalf("connect to qemu: %v (stderr: %s)", err, qemu.stderr.String())
	}
	defer c.Close()
	shutdown := c.Subscribe("SHUTDOWN")

	var status struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	execute(t, ctx, c, "query-status", &status)
	if status.Status != "prelaunch" || status.Running {
		t.Errorf("got status %+v, want prelaunch, not running", status)
	}

	var version struct {
		QEMU struct{ Major, Minor, Micro int } `json:"qemu"`
	}
	execute(t, ctx, c, "query-version", &version)
	g := c.Greeting().Version
	if v := version.QEMU; v.Major != g.Major || v.Minor != g.Minor || v.Micro != g.Micro {
		t.Errorf("got query-version %+v, want the greeting's %s", v, g)
	}

	// The largest reply QEMU gives; see TestLargeMessages.
	schema, err := c.Execute(ctx, "query-qmp-schema", nil)
	if err != nil {
		t.Fatalf("got error %v, want the schema", err)
	}
	t.Logf("query-qmp-schema returned %d bytes", len(schema))

	execute(t, ctx, c, "quit", nil)
	ev, err := shutdown.Wait(ctx)
	if err != nil {
		t.Fatalf("got %v, want a SHUTDOWN event", err)
	}
	var data struct {
		Guest  bool   `json:"guest"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.Guest || data.Reason != "host-qmp-quit" {
		t.Errorf("got SHUTDOWN data %s, want guest false, reason host-qmp-quit", ev.Data)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatalf("connection still open after quit")
	}
	if err := c.Err(); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got Err() = %v after quit, want ErrClosed", err)
	}
	select {
	case <-qemu.exited:
		if qemu.err != nil {
			t.Errorf("got qemu exit %v, want success (stderr: %s)", qemu.err, qemu.stderr.String())
		}
	case <-ctx.Done():
		t.Errorf("qemu still running after quit")
	}
}

// qemuProcess is a QEMU started for one test and killed when it ends.
type qemuProcess struct {
	ctx    context.Context // ends when QEMU exits
	exited chan struct{}
	err    error // from Wait; read after exited is closed
	stderr bytes.Buffer
}

func startQEMU(t *testing.T, ctx context.Context, bin string, args ...string) *qemuProcess {
	t.Helper()
	p := &qemuProcess{exited: make(chan struct{})}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &p.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p.ctx = pctx
	go func() {
		p.err = cmd.Wait()
		cancel()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// accept waits for QEMU to connect, giving up when ctx ends (QEMU exited).
func accept(t *testing.T, ctx context.Context, ln net.Listener) net.Conn {
	t.Helper()
	ul := ln.(*net.UnixListener)
	stop := context.AfterFunc(ctx, func() { ul.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn, err := ul.Accept()
	if err != nil {
		t.Fatalf("accept qemu's connection: %v", err)
	}
	return conn
}

func execute(t *testing.T, ctx context.Context, c *qmp.Client, command string, result any) {
	t.Helper()
	ret, err := c.Execute(ctx, command, nil)
	if err != nil {
		t.Fatalf("got error %v, want success", err)
	}
	if result == nil {
		return
	}
	if err := json.Unmarshal(ret, result); err != nil {
		t.Fatalf("decode %s return %s: %v", command, ret, err)
	}
}
