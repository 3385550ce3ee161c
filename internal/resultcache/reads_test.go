package resultcache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestServedReadsStayInside: an entry from a server lists the reads the
// lookup hashes. Only a regular file or directory inside the test file's
// directory is hashed: /dev/zero (which never ends), a file outside named
// by "..", an absolute path or a link, would make the cache a way to read
// the host (a hit says the server guessed its digest). Each is a miss,
// promptly, even when its digest is right. Before, each outside file with
// the right digest was a hit, and /dev/zero hung past the context.
func TestServedReadsStayInside(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "shadow")
	os.WriteFile(secret, []byte("root:x:0"), 0o600)
	secretSum := Bytes([]byte("root:x:0"))
	base := filepath.Join(t.TempDir(), "suite")
	os.Mkdir(base, 0o755)
	os.WriteFile(filepath.Join(base, "data.txt"), []byte("data"), 0o644)
	os.Symlink(secret, filepath.Join(base, "link"))
	os.Symlink(host, filepath.Join(base, "hostdir"))
	climb, _ := filepath.Rel(base, secret)

	for _, tt := range []struct {
		name string
		read Read
		hit  bool
	}{
		{"a file inside", Read{Path: "data.txt", SHA256: Bytes([]byte("data"))}, true},
		{"/dev/zero", Read{Path: "/dev/zero", SHA256: "00"}, false},
		{"an absolute path", Read{Path: secret, SHA256: secretSum}, false},
		{"a climbing path", Read{Path: climb, SHA256: secretSum}, false},
		{"a link out", Read{Path: "link", SHA256: secretSum}, false},
		{"through a linked directory", Read{Path: "hostdir/shadow", SHA256: secretSum}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := Bytes([]byte(tt.name))
			body := Entry{Key: key, Test: "x.test_a", Passed: time.Now(), Reads: []Read{tt.read}}.Encode()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
			defer srv.Close()
			c := &Cache{Remote: &HTTP{URL: srv.URL}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan bool, 1)
			go func() { _, ok := c.Lookup(ctx, key, base); done <- ok }()
			select {
			case ok := <-done:
				if ok != tt.hit {
					t.Errorf("Lookup: got hit %v, want %v", ok, tt.hit)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Lookup still hashing 10 s after its context ended")
			}
		})
	}
}

// TestReadHonoursContext: hashing a read stops when its context ends.
func TestReadHonoursContext(t *testing.T) {
	base := t.TempDir()
	os.WriteFile(filepath.Join(base, "f"), make([]byte, 3<<20), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Hasher{}).Read(ctx, base, "f"); err == nil {
		t.Error("Read with its context ended: got no error")
	}
	if _, err := (&Hasher{}).Read(context.Background(), base, "f"); err != nil {
		t.Errorf("Read: %v", err)
	}
}
