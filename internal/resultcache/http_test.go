package resultcache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nginxConf is a WebDAV nginx as docs/cli.md describes it, on one port
// and with every path in dir.
const nginxConf = `daemon off;
master_process off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log;
events {}
http {
	access_log off;
	client_body_temp_path {{dir}}/body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	server {
		listen 127.0.0.1:{{port}};
		root {{dir}}/www;
		location /ac/ {
			dav_methods PUT;
			create_full_put_path on;
			client_max_body_size 1m;
		}
	}
}
`

// startNginx starts Debian's nginx with WebDAV PUT on a free port of
// 127.0.0.1 and returns its URL and the directory it serves. It is stopped
// when the test ends. Skipped when nginx is not installed (scripts/deps
// installs the nginx package, so CI never skips).
func startNginx(t *testing.T) (url, root string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx is not installed (Debian's nginx package; scripts/deps installs it)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	root = filepath.Join(dir, "www")
	os.Mkdir(root, 0o755)
	port := freePort(t)
	conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", fmt.Sprint(port)).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited before it listened: %v\n%s%s", err, out, log)
		case <-time.After(20 * time.Millisecond): // nginx starts in ~10 ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10 s", addr)
		}
	}
	return "http://" + addr, root
}

// freePort returns a port of 127.0.0.1 that nobody listened on a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runner is a CI runner: its own local store, the shared server.
func runner(t *testing.T, url string, l *logs) *Cache {
	return &Cache{Local: &Local{Dir: t.TempDir()}, Remote: &HTTP{URL: url, Timeout: 5 * time.Second}, Logf: l.logf}
}

// TestNginxSharedBetweenRunners: what one runner stores, a second one (an
// empty local store) finds on the server, and keeps locally.
func TestNginxSharedBetweenRunners(t *testing.T) {
	url, root := startNginx(t)
	ctx := context.Background()
	base := t.TempDir()
	os.WriteFile(filepath.Join(base, "data.txt"), []byte("x"), 0o644)
	var l logs
	a, b := runner(t, url, &l), runner(t, url, &l)
	key := Bytes([]byte("shared"))
	if _, ok := b.Lookup(ctx, key, base); ok {
		t.Fatal("Lookup before any Store: got a hit")
	}
	a.Store(ctx, sampleEntry(key))
	if _, err := os.Stat(filepath.Join(root, "ac", key)); err != nil {
		t.Fatalf("the entry on the server: %v", err)
	}
	got, ok := b.Lookup(ctx, key, base)
	if !ok || got.Host != "runner-1" {
		t.Fatalf("second runner's Lookup: got %+v, %v; want runner-1's entry", got, ok)
	}
	if _, err := os.Stat(filepath.Join(b.Local.Dir, key+".json")); err != nil {
		t.Errorf("second runner's local store after a server hit: %v", err)
	}
	if lines := l.get(); len(lines) != 0 {
		t.Errorf("log: got %q, want nothing", lines)
	}
}

// TestNginxCorruptEntry: an entry on the server that fails its checksum
// is a miss, said once, and the next pass overwrites it.
func TestNginxCorruptEntry(t *testing.T) {
	url, _ := startNginx(t)
	ctx := context.Background()
	key := Bytes([]byte("corrupt"))
	bad := strings.Replace(string(sampleEntry(key).Encode()), "runner-1", "runner-X", 1)
	srv := &HTTP{URL: url}
	if err := srv.Put(ctx, key, []byte(bad)); err != nil {
		t.Fatalf("PUT the corrupt entry: %v", err)
	}
	var l logs
	a := runner(t, url, &l)
	if _, ok := a.Lookup(ctx, key, ""); ok {
		t.Fatal("Lookup of a corrupt entry: got a hit")
	}
	if lines := l.get(); len(lines) != 1 || !strings.Contains(lines[0], "checksum") {
		t.Errorf("log: got %q, want one line about the checksum", lines)
	}
	e := sampleEntry(key)
	e.Reads = nil
	a.Store(ctx, e)
	if _, ok := runner(t, url, &l).Lookup(ctx, key, ""); !ok {
		t.Error("Lookup after a pass overwrote the corrupt entry: got a miss")
	}
}

// TestRemoteFailures: a server that answers garbage, errors, is slow or is
// down gives misses, the run goes on, and it is said once. After an error
// or a timeout the server is not asked again.
func TestRemoteFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: closedURL, nobody listens
		again   bool             // the server is asked again after the first answer
		want    []string         // the log's lines: each holds its string
	}{
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html>it works</html>")
		}, true, []string{"corrupt entry"}},
		{"garbage, and a PUT that fails", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				http.Error(w, "no", http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, "<html>it works</html>")
		}, true, []string{"corrupt entry", "500 Internal Server Error; going on without it"}},
		{"an error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusBadGateway)
		}, false, []string{"502 Bad Gateway"}},
		{"bazel-remote validating", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				http.Error(w, "not an ActionResult", http.StatusBadRequest)
				return
			}
			http.NotFound(w, r)
		}, true, []string{"--disable_http_ac_validation"}},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the client gives up
		}, false, []string{"Timeout"}},
		{"down", nil, false, []string{"connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := closedURL
			var asked atomic.Int32
			if tt.handler != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					asked.Add(1)
					tt.handler(w, r)
				}))
				defer srv.Close()
				url = srv.URL
			}
			var l logs
			c := &Cache{Local: &Local{Dir: t.TempDir()}, Remote: &HTTP{URL: url, Timeout: 300 * time.Millisecond}, Logf: l.logf}
			ctx := context.Background()
			start := time.Now()
			for i := range 3 {
				if _, ok := c.Lookup(ctx, Bytes(fmt.Append(nil, i)), ""); ok {
					t.Fatalf("Lookup %d: got a hit", i)
				}
			}
			c.Store(ctx, sampleEntry(Bytes([]byte("k"))))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("three lookups and a store took %v, want the server's timeout once", took)
			}
			// Said once per kind: the lookup's problem, then the
			// store's (the PUT 500 must not hide behind the garbage).
			lines := l.get()
			ok := len(lines) == len(tt.want)
			for i := 0; ok && i < len(lines); i++ {
				ok = strings.Contains(lines[i], tt.want[i])
			}
			if !ok {
				t.Errorf("log: got %q, want a line with each of %q", lines, tt.want)
			}
			if tt.handler != nil && !tt.again && asked.Load() != 1 {
				t.Errorf("the server was asked %d times, want once: it failed the first", asked.Load())
			}
			if _, err := os.Stat(filepath.Join(c.Local.Dir, Bytes([]byte("k"))+".json")); err != nil {
				t.Errorf("the local store, whatever the server: %v", err)
			}
		})
	}
}
