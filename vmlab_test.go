package vmlab_test

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab"
)

// bootsVMs skips a test under -short, which runs the VM-free tests only.
func bootsVMs(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs (-short runs the VM-free tests only)")
	}
}

func TestLab(t *testing.T) {
	bootsVMs(t)
	lab := vmlab.New(t)
	server := lab.Machine("server", vmlab.Memory(384),
		vmlab.Packages("busybox-static"),
		vmlab.File("/srv/www/index.html", "hi\n", 0),
		vmlab.Users("alice"),
		vmlab.Sysctl("net.ipv4.ip_forward", "1"),
		vmlab.Services(map[string]vmlab.Service{
			"web": {Command: "busybox httpd -f -p 8000 -h /srv/www", ReadyPort: 8000},
		}))
	server.WaitForUnit(t, "multi-user.target", 0)
	server.WaitForUnit(t, "web.service", 0)
	server.Succeed(t, "id alice && test -d /home/alice")
	if out := server.Succeed(t, "cat /proc/sys/net/ipv4/ip_forward"); out != "1\n" {
		t.Errorf("ip_forward is %q, want the sysctl applied", out)
	}
	if out := server.Succeed(t, "curl -s -o /dev/null -w '%{http_code}' http://localhost:8000/"); out != "200" {
		t.Errorf("got %q, want %q", out, "200")
	}
	if status, out := server.Execute(t, "hostname; exit 2"); status != 2 || strings.TrimSpace(out) != "server" {
		t.Errorf("got %d %q, want 2 %q", status, out, "server")
	}
	server.Fail(t, "test -e /root/.ssh", vmlab.User("root"))
}

// userTest is a user's test of their own module.
const userTest = `package user

import (
	"testing"

	"github.com/vmlab/vmlab"
)

func TestHostname(t *testing.T) {
	m := vmlab.New(t).Machine("m")
	if got := m.Succeed(t, "hostname"); got != "m\n" {
		t.Errorf("got %q, want %q", got, "m\n")
	}
}
`

// TestUserModule is a user's module that requires vmlab (replaced by this
// checkout): plain `go test`, with cgo on, no VMLAB_AGENT and no TestMain,
// boots a machine.
func TestUserModule(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: cgo is off, the test binary would be static anyway")
	}
	checkout, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := os.ReadFile("go.sum") // a superset of what the user's module needs
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":       "module example.com/user\n\ngo 1.26.8\n\nrequire github.com/vmlab/vmlab v0.0.0\n\nreplace github.com/vmlab/vmlab => " + checkout + "\n",
		"go.sum":       string(sum),
		"user_test.go": userTest,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// -e: offline (GOPROXY=off), tidy cannot fetch what only the tests of
	// vmlab's dependencies import (testify for logrus's), which a fresh
	// module cache lacks and which the user's test does not build.
	goCmd(t, dir, "mod", "tidy", "-e")
	out := goCmd(t, dir, "test", "-count=1", "-v", ".")
	if !strings.Contains(out, "--- PASS: TestHostname") {
		t.Fatalf("go test in the user's module: got\n%s\nwant TestHostname to pass", out)
	}
	// Log lines name the user's line that caused them (New on line 10, the
	// first command, which boots m, on line 11), not vmlab's.
	for _, want := range []string{"user_test.go:10: vmlab: kernel", "user_test.go:11: m: booting", "user_test.go:11: m: up in"} {
		if !strings.Contains(out, want) {
			t.Errorf("go test -v in the user's module: got\n%s\nwant a line %q", out, want)
		}
	}
	if strings.Contains(out, "machine.go:") || strings.Contains(out, "vmlab.go:") {
		t.Errorf("go test -v in the user's module: got\n%s\nwant no line naming vmlab's files", out)
	}
}

// goCmd runs the go command in dir with cgo on and no VMLAB_AGENT, offline
// (the module cache has what this checkout needs).
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "VMLAB_AGENT=", "GOPROXY=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStartAll boots two machines with StartAll: their kernels started
// together, so their uptimes, read one right after the other, differ by far
// less than a boot (one after the other, by a whole boot, ~2 s under TCG).
// The boots' log lines name StartAll's line.
func TestStartAll(t *testing.T) {
	bootsVMs(t)
	logs := &captured{TB: t}
	lab := vmlab.New(logs)
	a, b := lab.Machine("a", vmlab.VLANs()), lab.Machine("b", vmlab.VLANs())
	_, _, line, _ := runtime.Caller(0)
	lab.StartAll(t)
	for _, name := range []string{"a", "b"} {
		if want := fmt.Sprintf("vmlab_test.go:%d: %s: booting\n", line+1, name); !strings.Contains(logs.String(), want) {
			t.Errorf("logs: got\n%s\nwant a line %q", logs.String(), want)
		}
	}
	ua, ub := uptime(t, a), uptime(t, b)
	apart := math.Abs(ua - ub)
	t.Logf("uptimes %.2f s and %.2f s", ua, ub)
	if apart > min(ua, ub)/2 {
		t.Errorf("uptimes %.2f s and %.2f s: the machines booted %.2f s apart, want them booted together", ua, ub, apart)
	}
}

// uptime returns the guest's uptime in seconds.
func uptime(t *testing.T, m *vmlab.Machine) float64 {
	t.Helper()
	out := m.Succeed(t, "cut -d' ' -f1 /proc/uptime")
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		t.Fatalf("%s: uptime %q: %v", m.Name(), out, err)
	}
	return v
}

// TestForwardPort forwards a free host port, picked by ForwardPort, to a
// guest's web server; a port another process holds fails with the port and
// the cause, not only QEMU's "Could not set up host forwarding rule".
func TestForwardPort(t *testing.T) {
	bootsVMs(t)
	web := vmlab.New(t).Machine("web", vmlab.UserNet(), vmlab.VLANs())
	web.Succeed(t, "mkdir -p /srv/www && echo forwarded > /srv/www/index.html && busybox httpd -p 80 -h /srv/www")
	web.WaitForOpenPort(t, 80, 0)
	port := web.ForwardPort(t, 0, 80)
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "forwarded\n" {
		t.Errorf("through host port %d: got %q, want %q", port, got, "forwarded\n")
	}

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port
	msgs := failures(t, func(tb testing.TB) { web.ForwardPort(tb, taken, 80) })
	want := fmt.Sprintf("host port %d: listen tcp 127.0.0.1:%d: bind: address already in use", taken, taken)
	if len(msgs) != 1 || !strings.Contains(msgs[0], want) {
		t.Errorf("forwarding a port another process holds: got %q, want an error saying %q", msgs, want)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// recorder is a testing.TB that keeps what vmlab reports; Fatal and
// FailNow end the goroutine, as testing's do.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) record(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, s)
}

func (r *recorder) Error(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *recorder) Fatal(args ...any)                 { r.Error(args...); r.FailNow() }
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); r.FailNow() }
func (r *recorder) FailNow()                          { runtime.Goexit() }

// failures runs f with a recorder, in a goroutine of its own for Goexit,
// and returns the failures it reported.
func failures(t *testing.T, f func(tb testing.TB)) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msgs
}

// TestExecuteAndWaits: ExecuteResult returns standard error with the
// status and standard output; every wait takes a timeout and fails t when
// it passes (the default would be 15 minutes under TCG).
func TestExecuteAndWaits(t *testing.T) {
	bootsVMs(t)
	m := vmlab.New(t).Machine("m", vmlab.VLANs())
	got := m.ExecuteResult(t, "echo out; echo err >&2; exit 3")
	if got.Status != 3 || got.Stdout != "out\n" || got.Stderr != "err\n" {
		t.Errorf("got status %d, stdout %q, stderr %q; want 3, %q, %q", got.Status, got.Stdout, got.Stderr, "out\n", "err\n")
	}
	if status, out := m.Execute(t, "echo out; echo err >&2; exit 3"); status != 3 || out != "out\n" {
		t.Errorf("Execute: got %d %q, want 3 %q", status, out, "out\n")
	}

	const timeout = 2 * time.Second
	waits := []struct {
		name string
		wait func(tb testing.TB)
	}{
		{"WaitForOpenPort", func(tb testing.TB) { m.WaitForOpenPort(tb, 9, timeout) }},
		{"WaitForFile", func(tb testing.TB) { m.WaitForFile(tb, "/no/such/file", timeout) }},
		{"WaitForClosedPort", func(tb testing.TB) {
			m.Succeed(tb, "busybox httpd -p 7 -h /")
			m.WaitForOpenPort(tb, 7, 0)
			m.WaitForClosedPort(tb, 7, timeout)
		}},
		{"WaitForOpenUnixSocket", func(tb testing.TB) { m.WaitForOpenUnixSocket(tb, "/no/such/socket", timeout) }},
		{"WaitForConsoleText", func(tb testing.TB) { m.WaitForConsoleText(tb, "no such line", timeout) }},
		{"WaitUntilTTYMatches", func(tb testing.TB) { m.WaitUntilTTYMatches(tb, 1, "no such text", timeout) }},
	}
	for _, w := range waits {
		t.Run(w.name, func(t *testing.T) {
			start := time.Now()
			msgs := failures(t, w.wait)
			took := time.Since(start)
			if len(msgs) != 1 || !strings.Contains(msgs[0], "timed out after 2s") {
				t.Errorf("got %q, want one failure saying it timed out after 2s", msgs)
			}
			if took > 30*time.Second {
				t.Errorf("took %v, want about %v", took, timeout)
			}
		})
	}
}

// captured is a testing.TB whose Output, where vmlab logs, is kept.
type captured struct {
	testing.TB
	mu  sync.Mutex
	buf strings.Builder
}

func (c *captured) Output() io.Writer { return c }

func (c *captured) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *captured) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
