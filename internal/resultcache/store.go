package resultcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// errMiss is a store's answer for a key it does not hold.
var errMiss = errors.New("not in the cache")

// maxEntryBytes bounds what a store's answer may be: an entry is under a
// kilobyte plus its reads.
const maxEntryBytes = 1 << 20

// Local is the result store in a directory (by default
// ~/.cache/vmlab/results): one file per key, written whole or not at all
// (cachefile.Write), bounded by Limits.
type Local struct {
	Dir string
}

// LocalLimits bound the local store, applied by Trim: an entry is a few
// hundred bytes, so it is age that counts.
var LocalLimits = cachefile.Limits{MaxBytes: 64 << 20, MaxAge: 30 * 24 * time.Hour, Grace: time.Minute}

func (l *Local) path(key string) string { return filepath.Join(l.Dir, key+".json") }

// Get returns the entry stored under key, or errMiss.
func (l *Local) Get(key string) ([]byte, error) {
	p := l.path(key)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errMiss
	}
	if err != nil {
		return nil, fmt.Errorf("read the result cache entry %s: %w", p, err)
	}
	now := time.Now()
	os.Chtimes(p, now, now) // a use: the trim keeps what is used
	return b, nil
}

// Put stores data under key, replacing what was there.
func (l *Local) Put(key string, data []byte) error {
	if err := cachefile.WriteBytes(l.path(key), data); err != nil {
		return fmt.Errorf("write the result cache entry %s: %w", l.path(key), err)
	}
	return nil
}

// Trim evicts the entries beyond LocalLimits.
func (l *Local) Trim() { cachefile.Trim(l.Dir, LocalLimits) }

// HTTP is a result store on an HTTP server: GET and PUT of URL/ac/KEY,
// what bazel-remote serves as its action cache (run with
// --disable_http_ac_validation, since an entry is not a Bazel
// ActionResult) and what nginx's WebDAV module serves with
// `dav_methods PUT; create_full_put_path on;`.
type HTTP struct {
	// URL is the server's base URL; entries are at URL/ac/KEY.
	URL string
	// Client makes the requests; nil: one whose requests each take at
	// most Timeout.
	Client *http.Client
	// Timeout bounds a request; zero: 10 s. A slow server costs a run at
	// most this once: the first failure turns the server off for the run.
	Timeout time.Duration
}

func (h *HTTP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	t := h.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	return &http.Client{Timeout: t}
}

func (h *HTTP) url(key string) string {
	return strings.TrimSuffix(h.URL, "/") + "/ac/" + url.PathEscape(key)
}

// shown is the URL of key as messages show it: without its password.
func (h *HTTP) shown(key string) string { return Redact(h.url(key)) }

// Redact returns raw, a URL, as messages may show it: its password, if
// any, replaced by "xxxxx" (url.URL.Redacted); a URL that does not parse
// loses all it holds before an "@".
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx" + rest[i:]
	}
	return scheme + rest
}

// redactErr returns err with the URL of a *url.Error (the HTTP client's
// errors, which print it) redacted.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: Redact(ue.URL), Err: ue.Err}
	}
	return err
}

// Get returns the entry stored under key, or errMiss on a 404.
func (h *HTTP) Get(ctx context.Context, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url(key), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: the URL does not parse", h.shown(key))
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, redactErr(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errMiss
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", h.shown(key), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxEntryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", h.shown(key), err)
	}
	if len(b) > maxEntryBytes {
		return nil, fmt.Errorf("GET %s: an answer over %d bytes is no entry", h.shown(key), maxEntryBytes)
	}
	return b, nil
}

// Put stores data under key.
func (h *HTTP) Put(ctx context.Context, key string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.url(key), bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("PUT %s: the URL does not parse", h.shown(key))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client().Do(req)
	if err != nil {
		return redactErr(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		// bazel-remote refuses what is not a Bazel ActionResult.
		return fmt.Errorf("PUT %s: %s (bazel-remote: start it with --disable_http_ac_validation)", h.shown(key), resp.Status)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("PUT %s: %s", h.shown(key), resp.Status)
	}
	return nil
}
