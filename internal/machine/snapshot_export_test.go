package machine

// SetSnapshotDir turns snapshot boots on for b's machines, with their
// snapshots in dir.
func (b *Boot) SetSnapshotDir(dir string) { b.snapshots = dir }
