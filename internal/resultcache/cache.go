package resultcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Cache looks tests up and records them in its stores: Local first, then
// Remote, whose hits are copied into Local. A store that fails does not
// fail the run: a local one is reported at each failure (a full disk is
// the user's to fix), a remote one once per kind (a lookup's, a store's:
// a server that answers garbage may refuse to store as well, and the user
// must learn that nothing is stored), an error that is no entry turning it
// off for the rest of the run (Cache.Remote is down, slow or not a cache). Safe for
// concurrent use.
type Cache struct {
	Local  *Local // nil: none
	Remote *HTTP  // nil: none
	// RemoteReadOnly: Store never PUTs on Remote (a job whose results
	// others should not trust, as a pull request's); Lookup still GETs.
	RemoteReadOnly bool
	Hasher         *Hasher
	// Logf reports what went wrong with a store; nil: silent.
	Logf func(format string, args ...any)

	mu         sync.Mutex
	remoteOff  bool
	remoteSaid map[string]bool // by kind: "lookup", "store"
}

// Lookup returns the entry under key whose recorded reads are unchanged
// (each Read.Path is relative to base, the test file's directory, and
// inside it; Hasher.Read);
// false when there is none. A corrupt entry is ignored (the next pass
// overwrites it).
func (c *Cache) Lookup(ctx context.Context, key, base string) (Entry, bool) {
	if c.Local != nil {
		b, err := c.Local.Get(key)
		switch {
		case err == nil:
			if e, ok := c.valid(ctx, key, b, "local", base); ok {
				return e, true
			}
		case !errors.Is(err, errMiss):
			c.logf("%v", err)
		}
	}
	r := c.remote()
	if r == nil {
		return Entry{}, false
	}
	b, err := r.Get(ctx, key)
	switch {
	case errors.Is(err, errMiss):
		return Entry{}, false
	case err != nil:
		c.remoteFailed("lookup", err)
		return Entry{}, false
	}
	e, ok := c.valid(ctx, key, b, Redact(r.URL), base)
	if ok && c.Local != nil {
		if err := c.Local.Put(key, b); err != nil {
			c.logf("%v", err)
		}
	}
	return e, ok
}

// valid decodes an entry from where and checks its reads.
func (c *Cache) valid(ctx context.Context, key string, b []byte, where, base string) (Entry, bool) {
	e, err := Decode(key, b)
	if err != nil {
		if where != "local" {
			c.remoteSay("lookup", fmt.Errorf("entry %.12s: %w; ignored", key, err))
		} else {
			c.logf("result cache: entry %s in %s: %v; ignored", key, c.Local.Dir, err)
		}
		return Entry{}, false
	}
	return e, c.readsHold(ctx, e, base)
}

// readsHold says whether every file e's run read is unchanged. A read
// that is not a path inside base (Hasher.Read) does not hold: an entry
// from a server may name any host file, or one that never ends.
func (c *Cache) readsHold(ctx context.Context, e Entry, base string) bool {
	for _, r := range e.Reads {
		sum, err := c.hasher().Read(ctx, base, r.Path)
		if err != nil || sum != r.SHA256 {
			return false
		}
	}
	return true
}

// Store records e, a passing run, under e.Key in every store.
func (c *Cache) Store(ctx context.Context, e Entry) {
	data := e.Encode()
	if c.Local != nil {
		if err := c.Local.Put(e.Key, data); err != nil {
			c.logf("%v", err)
		}
	}
	if r := c.remote(); r != nil && !c.RemoteReadOnly {
		if err := r.Put(ctx, e.Key, data); err != nil {
			c.remoteFailed("store", err)
		}
	}
}

// Close trims the local store.
func (c *Cache) Close() {
	if c.Local != nil {
		c.Local.Trim()
	}
}

func (c *Cache) hasher() *Hasher {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Hasher == nil {
		c.Hasher = &Hasher{}
	}
	return c.Hasher
}

func (c *Cache) remote() *HTTP {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remoteOff {
		return nil
	}
	return c.Remote
}

// remoteFailed turns the remote store off for the rest of the run, and
// says so the first time for kind ("lookup", "store").
func (c *Cache) remoteFailed(kind string, err error) {
	c.mu.Lock()
	c.remoteOff = true
	c.mu.Unlock()
	c.remoteSay(kind, fmt.Errorf("%w; going on without it", err))
}

// remoteSay reports a problem with the remote store, once per run and
// kind: "lookup" (a GET, or the entry it got) or "store" (a PUT).
func (c *Cache) remoteSay(kind string, err error) {
	c.mu.Lock()
	said := c.remoteSaid[kind]
	if c.remoteSaid == nil {
		c.remoteSaid = make(map[string]bool)
	}
	c.remoteSaid[kind] = true
	c.mu.Unlock()
	if !said {
		c.logf("result cache %s: %v", Redact(c.Remote.URL), err)
	}
}

func (c *Cache) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}
