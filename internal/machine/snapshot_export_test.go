package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
)

// SetSnapshotDir turns snapshot boots on for b's machines, with their
// snapshots in dir.
func (b *Boot) SetSnapshotDir(dir string) { b.snapshots = dir }

// ReplaceSnapshotState puts state in the snapshot directory dir in place
// of its state file and rewrites the header to match, its sum included:
// a state that passes the checks, for a test of what QEMU does with it.
func ReplaceSnapshotState(dir string, state []byte) error {
	h, err := readHeader(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, snapState), state, 0o600); err != nil {
		return err
	}
	sum := sha256.Sum256(state)
	h.State, h.StateSHA256 = int64(len(state)), hex.EncodeToString(sum[:])
	h.Sum = headerSum(h)
	b, _ := json.Marshal(h)
	return os.WriteFile(filepath.Join(dir, snapHeader), b, 0o600)
}

// FailTakesAfterSave makes every take fail after QEMU saved the state
// (writing the memory file) until the returned function is called.
func FailTakesAfterSave() (restore func()) {
	writeMemory = func(dst, src *os.File) (string, int64, error) {
		return "", 0, errors.New("a test's failure")
	}
	return func() { writeMemory = copyPages }
}
