package resultcache

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestURLPasswordNotShown: -cache-url's password appears in no message:
// a server's error status, a garbage answer, a server that is down (the
// HTTP client's *url.Error prints its URL), a bad URL. Before, each
// message showed the URL whole.
func TestURLPasswordNotShown(t *testing.T) {
	const password = "s3cretpw"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://ci:" + password + "@" + ln.Addr().String()
	ln.Close()
	up := strings.Replace(srv.URL, "http://", "http://ci:"+password+"@", 1)
	ctx := context.Background()
	var msgs []string
	for _, u := range []string{up, down, "http://ci:" + password + "@bad host:x"} {
		h := &HTTP{URL: u, Timeout: 5 * time.Second}
		if _, err := h.Get(ctx, "k"); err != nil {
			msgs = append(msgs, err.Error())
		}
		if err := h.Put(ctx, "k", []byte("{}")); err != nil {
			msgs = append(msgs, err.Error())
		}
		var l logs
		c := &Cache{Remote: h, Logf: l.logf}
		c.Lookup(ctx, "k", t.TempDir())
		msgs = append(msgs, l.get()...)
	}
	if len(msgs) < 9 {
		t.Fatalf("got %d messages, want at least 9: %q", len(msgs), msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, password) {
			t.Errorf("message shows the password: %s", m)
		}
	}
	if got := Redact("https://ci:" + password + "@cache.example:8443/x"); got != "https://ci:xxxxx@cache.example:8443/x" {
		t.Errorf("Redact: got %q", got)
	}
}

// TestRemoteReadOnly: with RemoteReadOnly (-cache=read), a pass is stored
// locally and never PUT; lookups still GET the server.
func TestRemoteReadOnly(t *testing.T) {
	var mu sync.Mutex
	methods := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods[r.Method]++
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	ctx := context.Background()
	c := &Cache{Local: &Local{Dir: t.TempDir()}, Remote: &HTTP{URL: srv.URL}, RemoteReadOnly: true}
	c.Lookup(ctx, Bytes([]byte("other")), t.TempDir())
	key := Bytes([]byte("k"))
	c.Store(ctx, Entry{Key: key, Test: "x.test_a", Passed: time.Now()})
	if _, ok := c.Lookup(ctx, key, t.TempDir()); !ok {
		t.Error("Lookup after Store: got a miss, want the local entry")
	}
	mu.Lock()
	defer mu.Unlock()
	if methods[http.MethodPut] != 0 || methods[http.MethodGet] != 1 {
		t.Errorf("requests: got %v, want one GET and no PUT", methods)
	}
}
