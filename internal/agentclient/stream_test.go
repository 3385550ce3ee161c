package agentclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/pty"
)

// screen collects a streamed command's output and waits for text in it.
type screen struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  bytes.Buffer
	mark int
}

func newScreen() *screen {
	s := &screen{}
	s.cond.L = &s.mu
	return s
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	s.cond.Broadcast()
	return len(p), nil
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// expect waits until the output since the last match matches re.
func (s *screen) expect(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.AfterFunc(20*time.Second, func() {
		s.mu.Lock()
		s.mark = -1
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.mark >= 0 {
		if loc := rx.FindIndex(s.buf.Bytes()[s.mark:]); loc != nil {
			s.mark += loc[1]
			return
		}
		s.cond.Wait()
	}
	t.Fatalf("no %q in the output after 20s; it was:\n%s", re, s.buf.String())
}

// session is a streamed command the test types into.
type session struct {
	out    *screen
	in     *io.PipeWriter
	resize chan pty.Size
	sigs   chan string
	done   chan struct{}
	res    agentproto.Result
	err    error
}

func startStream(t *testing.T, c *agentclient.Client, req agentproto.Exec) *session {
	t.Helper()
	r, w := io.Pipe()
	s := &session{out: newScreen(), in: w, resize: make(chan pty.Size), sigs: make(chan string), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(s.done)
		s.res, s.err = c.Stream(ctx, req, agentclient.StreamIO{
			Stdin: r, Stdout: s.out, Stderr: s.out, Resize: s.resize, Signals: s.sigs})
		r.Close()
	}()
	t.Cleanup(func() {
		cancel() // the agent kills what still runs
		w.Close()
		<-s.done
	})
	return s
}

func (s *session) typ(t *testing.T, keys string) {
	t.Helper()
	if _, err := io.WriteString(s.in, keys); err != nil {
		t.Fatalf("type %q: %v", keys, err)
	}
}

func (s *session) wait(t *testing.T) agentproto.Result {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not end; its output:\n%s", s.out)
	}
	if s.err != nil {
		t.Fatalf("stream: %v", s.err)
	}
	return s.res
}

func needBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this host")
	}
}

// TestStreamTTY drives an interactive shell on a terminal in the (host's)
// agent: the terminal's name and TERM, its size and a resize, Ctrl-C to
// the foreground job, and exit.
func TestStreamTTY(t *testing.T) {
	needBash(t)
	c := newPair(t)
	s := startStream(t, c, agentproto.Exec{Argv: []string{"bash", "--norc", "--noprofile", "-i"},
		Env: []string{"PS1=prompt$ "}, TTY: &agentproto.TTY{Term: "xterm-test", Rows: 30, Cols: 100}})
	s.out.expect(t, `prompt\$ `)

	s.typ(t, "tty; echo term=$TERM; stty size\n")
	s.out.expect(t, `/dev/pts/\d+\r\nterm=xterm-test\r\n30 100\r\n`)

	// A resize reaches the foreground job as SIGWINCH, with the new size.
	s.typ(t, "trap 'stty size; exit 0' WINCH; echo wai''ting; while :; do read -r -t 0.1 x || :; done\n")
	s.out.expect(t, `waiting\r\n`)
	s.resize <- pty.Size{Rows: 40, Cols: 120}
	s.out.expect(t, `40 120\r\n`)

	s = startStream(t, c, agentproto.Exec{Argv: []string{"bash", "--norc", "--noprofile", "-i"},
		Env: []string{"PS1=prompt$ "}, TTY: &agentproto.TTY{}})
	s.out.expect(t, `prompt\$ `)
	s.typ(t, "stty size\n")
	s.out.expect(t, `24 80\r\n`)
	// Ctrl-C is a byte: the terminal makes it SIGINT for the foreground
	// job. The job says when it runs (bash gives it the terminal before
	// it execs): a Ctrl-C before would reach bash.
	s.typ(t, "sh -c 'echo sle\"\"eping; exec sleep 100'\n")
	s.out.expect(t, `sleeping\r\n`)
	s.typ(t, "\x03")
	s.out.expect(t, `prompt\$ `)
	s.typ(t, "echo status=$?\n")
	s.out.expect(t, `status=130`)
	s.typ(t, "exit 7\n")
	if res := s.wait(t); res.Exit != 7 {
		t.Errorf("exit 7: got exit %d (%+v)", res.Exit, res)
	}
}

// TestStreamTTYDrain checks that output a command wrote just before it
// exited is read out of the terminal and sent, and that the end of the
// input is the terminal's EOF.
func TestStreamTTYDrain(t *testing.T) {
	c := newPair(t)
	s := startStream(t, c, agentproto.Exec{Argv: []string{"sh", "-c", `head -c 300000 /dev/zero | tr '\0' x`},
		TTY: &agentproto.TTY{}})
	s.wait(t)
	if got := strings.Count(s.out.String(), "x"); got != 300000 {
		t.Errorf("got %d bytes of output, want 300000", got)
	}

	s = startStream(t, c, agentproto.Exec{Argv: []string{"cat"}, TTY: &agentproto.TTY{}})
	s.typ(t, "one line\n")
	s.in.Close()
	if res := s.wait(t); res.Exit != 0 {
		t.Errorf("cat after EOF: got %+v; output %q", res, s.out)
	}
	// The terminal echoes the line, and cat prints it.
	if got := strings.Count(s.out.String(), "one line\r\n"); got != 2 {
		t.Errorf("got %q, want the line twice (echo and cat)", s.out)
	}
}

// TestStreamPipes runs commands without a terminal: stdin, its EOF,
// separate stderr, exit status, and signals to the process group.
func TestStreamPipes(t *testing.T) {
	c := newPair(t)
	var out, errOut bytes.Buffer
	res, err := c.Stream(context.Background(), agentproto.Exec{Argv: []string{"sh", "-c", "tr a-z A-Z; echo err >&2; exit 3"}},
		agentclient.StreamIO{Stdin: strings.NewReader("uname -n\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || res.Exit != 3 || out.String() != "UNAME -N\n" || errOut.String() != "err\n" {
		t.Errorf("got %+v, %v, stdout %q, stderr %q; want exit 3, \"UNAME -N\\n\", \"err\\n\"", res, err, &out, &errOut)
	}

	tests := []struct {
		signal string
		number int
	}{{"SIGINT", 2}, {"SIGTERM", 15}, {"SIGHUP", 1}, {"SIGKILL", 9}}
	for _, tt := range tests {
		t.Run(tt.signal, func(t *testing.T) {
			s := startStream(t, c, agentproto.Exec{Argv: []string{"sh", "-c", "echo ready; exec sleep 100"}})
			s.out.expect(t, "ready\n")
			s.sigs <- tt.signal
			res := s.wait(t)
			if res.SignalNumber != tt.number || res.Exit != -1 {
				t.Errorf("got %+v, want killed by signal %d", res, tt.number)
			}
		})
	}

	// A login shell reads its commands from stdin.
	out.Reset()
	res, err = c.Stream(context.Background(), agentproto.Exec{Login: true},
		agentclient.StreamIO{Stdin: strings.NewReader("echo login=$0\n"), Stdout: &out})
	if err != nil || res.Exit != 0 || !strings.Contains(out.String(), "login=") {
		t.Errorf("login shell: got %+v, %v, stdout %q", res, err, &out)
	}
	// A program that does not exist.
	res, err = c.Stream(context.Background(), agentproto.Exec{Argv: []string{"no-such-program"}}, agentclient.StreamIO{})
	if err != nil || !strings.Contains(res.Error, "no-such-program: not found") {
		t.Errorf("no such program: got %+v, %v", res, err)
	}
}

// blockedWriter blocks every write until release is closed.
type blockedWriter struct {
	release chan struct{}
	n       int
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.n += len(p)
	return len(p), nil
}

// TestStreamSlowWriter checks that a writer that blocks (a paused
// terminal) holds up only its own command: the output waits under the
// window, the other calls go on, and nothing is lost.
func TestStreamSlowWriter(t *testing.T) {
	c := newPair(t)
	w := &blockedWriter{release: make(chan struct{})}
	done := make(chan struct{})
	var res agentproto.Result
	var err error
	go func() {
		defer close(done)
		res, err = c.Stream(context.Background(), agentproto.Exec{Argv: []string{"head", "-c", "5000000", "/dev/zero"}},
			agentclient.StreamIO{Stdout: w})
	}()
	for i := range 3 {
		if r, out, _ := run(t, c, fmt.Sprintf("echo %d", i)); r.Exit != 0 || out != fmt.Sprintf("%d\n", i) {
			t.Fatalf("another command while the writer is blocked: got %+v, %q", r, out)
		}
	}
	close(w.release)
	<-done
	if err != nil || res.Exit != 0 || w.n != 5000000 {
		t.Errorf("got %+v, %v and %d bytes, want exit 0 and 5000000 bytes", res, err, w.n)
	}
}

// TestStreamTooLarge: an argument longer than Linux execs fails alone,
// before anything is sent, naming it.
func TestStreamTooLarge(t *testing.T) {
	c := newPair(t)
	_, err := c.Stream(context.Background(), agentproto.Exec{Argv: []string{"echo", strings.Repeat("x", agentproto.MaxArg+1)}}, agentclient.StreamIO{})
	if !errors.Is(err, agentclient.ErrTooLarge) || !strings.Contains(err.Error(), "argument 1 of the command") {
		t.Errorf("got %v, want ErrTooLarge naming argument 1", err)
	}
	if r, out, _ := run(t, c, "echo still up"); r.Exit != 0 || out != "still up\n" {
		t.Errorf("after: got %+v, %q", r, out)
	}
}

// TestStreamTTYUser: a user's command gets a terminal that is the user's,
// so programs that open it again by name can.
func TestStreamTTYUser(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil || os.Getuid() != 0 {
		t.Skip("needs root and a user nobody")
	}
	c := newPair(t)
	s := startStream(t, c, agentproto.Exec{User: "nobody", TTY: &agentproto.TTY{},
		Argv: []string{"sh", "-c", "id -un; test -w $(tty) && echo writable"}})
	s.wait(t)
	if got := s.out.String(); got != "nobody\r\nwritable\r\n" {
		t.Errorf("got %q, want nobody and a writable terminal", got)
	}
}
