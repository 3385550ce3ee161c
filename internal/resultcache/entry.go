package resultcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// entryFormat is the version of Entry's encoding; an entry of another
// format is a miss.
const entryFormat = 1

// Entry is what a passing run leaves under its test's key.
type Entry struct {
	Format int    `json:"format"`
	Key    string `json:"key"`
	// Test is the test's id (file.test_x), for people reading the store.
	Test string `json:"test"`
	// Vmlab is the version of the vmlab that ran it (version.String).
	Vmlab string `json:"vmlab"`
	// Passed is when it passed, Host where, Duration how long it took.
	Passed   time.Time     `json:"passed"`
	Host     string        `json:"host"`
	Duration time.Duration `json:"duration"`
	// Reads are the host files the run read as it went (copy_from_host
	// sources), with their digests then: the entry holds only while they
	// are unchanged.
	Reads []Read `json:"reads,omitempty"`
	// Sum is the SHA-256 of the entry encoded with Sum empty: an entry
	// that fails it was cut or altered, and is ignored.
	Sum string `json:"sum"`
}

// Read is a host file or directory a run read, and its digest (Hasher.Path).
type Read struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// errCorrupt is a stored entry that is not one: bad JSON, another key, a
// failed checksum.
var errCorrupt = errors.New("corrupt entry")

// Encode returns e as stored, its format and checksum set.
func (e Entry) Encode() []byte {
	e.Format = entryFormat
	e.Sum = e.checksum()
	out, _ := json.Marshal(e) // strings, times and numbers only
	return out
}

// checksum is the SHA-256 of e encoded with Sum empty.
func (e Entry) checksum() string {
	e.Sum = ""
	body, _ := json.Marshal(e)
	return Bytes(body)
}

// Decode reads an entry stored under key, checking its format, key and
// checksum.
func Decode(key string, data []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	switch {
	case e.Format != entryFormat:
		return Entry{}, fmt.Errorf("%w: format %d, want %d", errCorrupt, e.Format, entryFormat)
	case e.Key != key:
		return Entry{}, fmt.Errorf("%w: holds key %.12s, want %.12s", errCorrupt, e.Key, key)
	case e.Sum != e.checksum():
		return Entry{}, fmt.Errorf("%w: its checksum does not match its body", errCorrupt)
	}
	return e, nil
}
