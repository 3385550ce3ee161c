package cli

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestUpForwardVM runs `vmlab up` on a file whose machine declares a
// forward from a free host port: vmlab up prints the port it picked, the
// host reaches the guest's web server through it, and vmlab status shows
// it. One boot.
func TestUpForwardVM(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime, err := os.MkdirTemp("", "vfwd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(runtime)

	cmd := vmlabCmd(t, bin, runtime, "up", "testdata/forward.star")
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		w.Close()
		exited <- err
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("vmlab up: %s", sc.Text())
			lines <- sc.Text()
		}
	}()

	forward := regexp.MustCompile(`^\s+web\s+up\s+.*127\.0\.0\.1:(\d+) -> 80`)
	port := ""
	deadline := time.After(3 * time.Minute)
	for up := false; !up; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("vmlab up exited before the lab was up: %v", <-exited)
			}
			if m := forward.FindStringSubmatch(l); m != nil {
				port = m[1]
			}
			up = strings.HasPrefix(l, "lab forward is up")
		case <-deadline:
			t.Fatal("vmlab up: the lab was not up after 3 minutes")
		}
	}
	if port == "" || port == "0" {
		t.Fatalf("vmlab up did not print web's forward as 127.0.0.1:PORT -> 80 (got port %q)", port)
	}

	// busybox httpd returns once it listens (it then runs as a daemon).
	shell := vmlabCmd(t, bin, runtime, "shell", "web", "--", "busybox", "httpd", "-p", "80", "-h", "/srv/www")
	if out, err := shell.CombinedOutput(); err != nil {
		t.Fatalf("vmlab shell web -- busybox httpd: %v: %s", err, out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "forwarded by vmlab up\n" {
		t.Errorf("through host port %s: got %q, want the guest's page", port, body)
	}

	status, err := vmlabCmd(t, bin, runtime, "status").Output()
	if want := "127.0.0.1:" + port + " -> 80"; err != nil || !strings.Contains(string(status), want) {
		t.Errorf("vmlab status: got %v, %q; want %s", err, status, want)
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("vmlab up after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("vmlab up still runs a minute after SIGINT")
	}
}
