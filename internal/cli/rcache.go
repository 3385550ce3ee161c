package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/resultcache"
	"github.com/vmlab/vmlab/internal/script"
	"github.com/vmlab/vmlab/internal/version"
)

// resultCacheEnv names the local result store's directory (default
// ~/.cache/vmlab/results), or is "off": -cache is then off unless given.
// The package's tests set it to off (rcache_test.go), for themselves and
// the vmlab processes they start: they run the same files many times and
// want their VMs to boot each time.
const resultCacheEnv = "VMLAB_RESULT_CACHE"

// dpkgStatus is the host's package database, an input of every test with
// a machine on the host's root.
var dpkgStatus = "/var/lib/dpkg/status"

// resultCache is vmlab run's result cache (docs/cli.md "Cached results"):
// its flags; then, once started, the keys of the tests it may skip or
// record. As a report.Sink it records the host files a test copies in
// (copy_from_host) and stores each test that passes.
type resultCache struct {
	mode  string
	count int
	url   string

	cache *resultcache.Cache // nil: off
	mu    sync.Mutex
	tests map[string]*cachedTest // by test id; an id two tests share is unkeyed
	// stores are the entries being stored: a slow server delays Close,
	// not the events of the tests still running.
	stores sync.WaitGroup
}

// cachedTest is a test the cache may record.
type cachedTest struct {
	key   string
	base  string // the test file's directory, absolute: copy_from_host's relative paths
	reads []resultcache.Read
	// unkeyed: a file the test read could not be hashed; it is not stored.
	unkeyed bool
}

func registerResultCache(fs *flag.FlagSet) *resultCache {
	rc := &resultCache{}
	def := "on"
	if os.Getenv(resultCacheEnv) == "off" {
		def = "off"
	}
	fs.StringVar(&rc.mode, "cache", def, "`on`: report a test that passed before with the same inputs as cached, without running it; read: the same, but record passes in the local store only, never on -cache-url's server (a pull request's job); off: run every test and record nothing (docs/cli.md, Cached results)")
	fs.IntVar(&rc.count, "count", 0, "with 1, run every test even when cached (its pass is still recorded)")
	fs.StringVar(&rc.url, "cache-url", "", "also keep results on the HTTP server at `URL` (GET and PUT of URL/ac/KEY: bazel-remote, a WebDAV nginx), shared by CI runners")
	return rc
}

// check refuses bad flag values.
func (rc *resultCache) check() error {
	if rc.mode != "on" && rc.mode != "read" && rc.mode != "off" {
		return fmt.Errorf("-cache %q: want on, read or off", rc.mode)
	}
	if rc.count < 0 || rc.count > 1 {
		return fmt.Errorf("-count %d: only -count=1 (run even when cached) is supported", rc.count)
	}
	if rc.url != "" && !strings.HasPrefix(rc.url, "http://") && !strings.HasPrefix(rc.url, "https://") {
		return fmt.Errorf("-cache-url %q: want an http:// or https:// URL", resultcache.Redact(rc.url))
	}
	return nil
}

// start keys the jobs and reports those the cache holds as cached
// (test-start, then a passed test-end with Cached), and returns the jobs
// left to run. off (-coverage, -i, -keep-state) turns the cache off for
// the run: then every job runs and nothing is recorded.
func (rc *resultCache) start(ctx context.Context, e *env, jobs []job, boot *machine.Boot, timeout time.Duration, bf bootFlags, off bool, rep *report.Reporter) []job {
	if rc.mode == "off" || off {
		return jobs
	}
	c, err := openResultCache(rc.url, func(format string, args ...any) { e.errorf(format, args...) })
	if err == nil && rc.mode == "read" {
		c.RemoteReadOnly = true
	}
	if err != nil {
		e.errorf("result cache: %v; running every test", err)
		return jobs
	}
	rc.cache = c
	rc.tests = make(map[string]*cachedTest)
	k := keyer{h: c.Hasher, boot: boot, timeout: timeout, bf: bf}
	var left []job
	said := make(map[error]bool) // a file's error is said once, not once per test
	for _, j := range jobs {
		id := j.file.TestID(j.test)
		key, err := k.key(ctx, j)
		if err != nil {
			if !said[err] {
				e.errorf("result cache: %s: %v; its tests run and are not recorded", j.file.Name, err)
				said[err] = true
			}
			left = append(left, j)
			continue
		}
		base, err := filepath.Abs(filepath.Dir(j.file.Name))
		if err != nil {
			e.errorf("result cache: %s: %v; its tests run and are not recorded", j.file.Name, err)
			left = append(left, j)
			continue
		}
		rc.mu.Lock()
		if prev := rc.tests[id]; prev != nil {
			// Two tests under one id (selectJobs refuses them; this is the
			// second line): the events cannot tell which one ran, so
			// neither is recorded. Each still looks up its own key.
			prev.unkeyed = true
		} else {
			rc.tests[id] = &cachedTest{key: key, base: base}
		}
		rc.mu.Unlock()
		if rc.count == 1 {
			left = append(left, j)
			continue
		}
		if ent, ok := c.Lookup(ctx, key, base); ok {
			rc.reportCached(rep, id, ent)
			continue
		}
		left = append(left, j)
	}
	return left
}

// reportCached reports a test the cache holds.
func (rc *resultCache) reportCached(rep *report.Reporter, id string, ent resultcache.Entry) {
	rep.Emit(report.Event{Kind: report.TestStart, Test: id, Cached: true})
	rep.Emit(report.Event{Kind: report.TestEnd, Test: id, Passed: true, Cached: true, Duration: ent.Duration,
		Text: fmt.Sprintf("passed %s on %s (vmlab %s)", ent.Passed.Local().Format(time.DateTime), ent.Host, ent.Vmlab)})
}

// openResultCache opens the local store ($VMLAB_RESULT_CACHE, else
// ~/.cache/vmlab/results) and the server at url, if any.
func openResultCache(url string, logf func(string, ...any)) (*resultcache.Cache, error) {
	dir := os.Getenv(resultCacheEnv)
	if dir == "" || dir == "off" {
		base, err := machine.CacheDir("")
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(base, "results")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the result cache directory: %w", err)
	}
	c := &resultcache.Cache{Local: &resultcache.Local{Dir: dir}, Hasher: &resultcache.Hasher{}, Logf: logf}
	if url != "" {
		c.Remote = &resultcache.HTTP{URL: url}
	}
	return c, nil
}

// Event records what a keyed test reads from the host as it runs, and
// stores it when it passes.
func (rc *resultCache) Event(ev report.Event) {
	if rc.cache == nil {
		return
	}
	rc.mu.Lock()
	t := rc.tests[ev.Test]
	rc.mu.Unlock()
	if t == nil {
		return
	}
	switch {
	case ev.Kind == report.Command && strings.HasPrefix(ev.Command, "copy_from_host(") && ev.Error == "":
		rc.recordRead(t, ev.Command)
	case ev.Kind == report.TestEnd && ev.Passed && !ev.Cached && !t.unkeyed:
		host, _ := os.Hostname()
		ent := resultcache.Entry{Key: t.key, Test: ev.Test, Vmlab: version.Short(),
			Passed: ev.Time.UTC(), Host: host, Duration: ev.Duration, Reads: t.reads}
		rc.stores.Go(func() { rc.cache.Store(context.Background(), ent) }) // each request bounded by HTTP.Timeout
	}
}

// recordRead records the source of a copy_from_host call, relative to
// the test file's directory, with its digest now. A source outside that
// directory (or reached through a link leading out of it, or no regular
// file or directory) leaves the test unrecorded: a lookup hashes only
// what is inside it (resultcache.Hasher.Read).
func (rc *resultCache) recordRead(t *cachedTest, call string) {
	src, ok := copySource(call)
	rel := src
	if ok && filepath.IsAbs(src) {
		var err error
		rel, err = filepath.Rel(t.base, src)
		ok = err == nil
	}
	var sum string
	var err error
	if ok {
		sum, err = rc.cache.Hasher.Read(context.Background(), t.base, filepath.Clean(rel))
	}
	if !ok || err != nil {
		t.unkeyed = true
		return
	}
	t.reads = append(t.reads, resultcache.Read{Path: filepath.Clean(rel), SHA256: sum})
}

// copySource returns the source argument of a copy_from_host call's text
// (the report's copy_from_host("data/x", "/srv/x")).
func copySource(call string) (string, bool) {
	x, err := (&syntax.FileOptions{}).ParseExpr("call", call, 0)
	if err != nil {
		return "", false
	}
	ce, ok := x.(*syntax.CallExpr)
	if !ok {
		return "", false
	}
	for i, a := range ce.Args {
		if b, ok := a.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
			if id, ok := b.X.(*syntax.Ident); ok && id.Name == "source" {
				a = b.Y
			} else {
				continue
			}
		} else if i != 0 {
			continue
		}
		if lit, ok := a.(*syntax.Literal); ok && lit.Token == syntax.STRING {
			return lit.Value.(string), true
		}
		return "", false
	}
	return "", false
}

// Close waits for the entries being stored, then trims the local store.
func (rc *resultCache) Close() error {
	rc.stores.Wait()
	if rc.cache != nil {
		rc.cache.Close()
	}
	return nil
}

// keyer computes tests' keys. What all tests share (vmlab, the kernel,
// QEMU) is hashed once, through h.
type keyer struct {
	h       *resultcache.Hasher
	exe     string // the vmlab executable; "": this process's
	boot    *machine.Boot
	timeout time.Duration
	bf      bootFlags

	common    *resultcache.Inputs
	commonErr error
	files     map[*script.File]*resultcache.Inputs
	fileErrs  map[*script.File]error
}

// key returns j's key.
func (k *keyer) key(ctx context.Context, j job) (string, error) {
	in, err := k.fileInputs(ctx, j.file)
	if err != nil {
		return "", err
	}
	t := *in
	t.Test = j.test
	return t.Key(), nil
}

// fileInputs returns the inputs every test of f shares. An error is
// remembered: f's other tests get the same one.
func (k *keyer) fileInputs(ctx context.Context, f *script.File) (*resultcache.Inputs, error) {
	if in := k.files[f]; in != nil {
		return in, nil
	}
	if err := k.fileErrs[f]; err != nil {
		return nil, err
	}
	if k.common == nil && k.commonErr == nil {
		k.common, k.commonErr = k.commonInputs()
	}
	if k.commonErr != nil {
		return nil, k.commonErr
	}
	in, err := k.readFile(ctx, f)
	if err != nil {
		if k.fileErrs == nil {
			k.fileErrs = make(map[*script.File]error)
		}
		k.fileErrs[f] = err
		return nil, err
	}
	if k.files == nil {
		k.files = make(map[*script.File]*resultcache.Inputs)
	}
	k.files[f] = in
	return in, nil
}

// readFile gathers f's own inputs: its loaded bytes, declarations, images, the
// host's packages and its shares.
func (k *keyer) readFile(ctx context.Context, f *script.File) (*resultcache.Inputs, error) {
	in := *k.common
	// The bytes loaded, and run: the file on disk may have changed since.
	in.File, in.Source, in.Machines = f.Name, f.Source(), f.Specs
	var err error
	if in.Images, err = k.images(ctx, f); err != nil {
		return nil, err
	}
	in.Shares = map[string]string{}
	for _, m := range f.Specs {
		if m.Image == "" && in.HostPackages == "" {
			if in.HostPackages, err = k.h.File(dpkgStatus); err != nil {
				return nil, fmt.Errorf("machine %s boots the host's root: %w", m.Name, err)
			}
		}
		for _, s := range m.Shares {
			if in.Shares[s.HostPath], err = k.h.Tree(s.HostPath); err != nil {
				return nil, fmt.Errorf("machine %s: %w", m.Name, err)
			}
		}
	}
	return &in, nil
}

// commonInputs hashes what every test of the run shares.
func (k *keyer) commonInputs() (*resultcache.Inputs, error) {
	var in resultcache.Inputs
	exe, err := k.exe, error(nil)
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the vmlab executable: %w", err)
		}
	}
	if in.Vmlab, err = k.h.File(exe); err != nil {
		return nil, err
	}
	if in.Kernel, err = k.h.File(k.boot.Kernel.Image); err != nil {
		return nil, err
	}
	if in.Initramfs, err = k.h.File(k.boot.Initramfs); err != nil {
		return nil, err
	}
	if in.QEMU, err = k.qemu(); err != nil {
		return nil, err
	}
	in.Options = map[string]string{
		"timeout": k.timeout.String(),
		"memory":  fmt.Sprint(k.bf.memory),
		"cpus":    fmt.Sprint(k.bf.cpus),
		"accel":   k.boot.Accel.String(),
		"fs":      k.boot.FS,
	}
	return &in, nil
}

// qemu returns the digest of the QEMU binary and its -version line.
func (k *keyer) qemu() (string, error) {
	sum, err := k.h.File(k.boot.QEMU)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(k.boot.QEMU, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s -version: %w", k.boot.QEMU, err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return resultcache.Bytes([]byte(sum + " " + string(line))), nil
}

// images returns the content keys of f's machines' images, preparing them
// as the run would (a cached image is found in the cache; one missing is
// built, as the test needs it anyway).
func (k *keyer) images(ctx context.Context, f *script.File) (map[string]string, error) {
	cfgs := make([]machine.Config, len(f.Specs))
	images := false
	for i, m := range f.Specs {
		cfgs[i] = machine.Config{Machine: m, Boot: k.boot}
		images = images || m.Image != ""
	}
	if !images {
		return nil, nil
	}
	if err := lab.PrepareImages(ctx, k.boot, cfgs, nil, nil); err != nil {
		return nil, err
	}
	keys := make(map[string]string, len(cfgs))
	for _, c := range cfgs {
		if c.RootImage == nil {
			continue // the host's root
		}
		// The image file's name is its content key (image.Image.Key).
		base := filepath.Base(c.RootImage.Path)
		keys[c.Name] = strings.TrimSuffix(base, filepath.Ext(base))
	}
	return keys, nil
}
