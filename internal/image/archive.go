package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The archives used when the host's apt names none (a host that is not
// Debian, or one that uses only other archives).
const (
	defaultMirror   = "http://deb.debian.org/debian"
	defaultSecurity = "http://deb.debian.org/debian-security"
)

// archive is where Debian packages come from: the mirror the host's apt
// uses, and its security archive.
type archive struct {
	Mirror   string // e.g. http://deb.debian.org/debian
	Security string // e.g. http://deb.debian.org/debian-security
	// Components are those the host enables for Mirror (main first, then
	// contrib, non-free, non-free-firmware as the host lists them), and
	// SecurityComponents those for Security; ["main"] when it names none.
	Components         []string
	SecurityComponents []string
	// NoValidUntil: the host's apt does not check Release files' expiry
	// (Acquire::Check-Valid-Until "false", as hosts on a snapshot or a
	// caching proxy set), so the build does not either.
	NoValidUntil bool
	client       *http.Client
}

// source is one apt source: a URI, its suites and components.
type source struct {
	URI        string
	Suites     []string
	Components []string
}

// hostArchive reads the host's apt sources under etc (normally
// /etc/apt) and picks the Debian mirror and security archive they use.
func hostArchive(etc string) archive {
	var srcs []source
	if data, err := os.ReadFile(filepath.Join(etc, "sources.list")); err == nil {
		srcs = append(srcs, parseOneLine(data)...)
	}
	files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*"))
	slices.Sort(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(f, ".list"):
			srcs = append(srcs, parseOneLine(data)...)
		case strings.HasSuffix(f, ".sources"):
			srcs = append(srcs, parseDeb822(data)...)
		}
	}
	a := pickArchive(srcs)
	a.NoValidUntil = aptNoValidUntil()
	return a
}

// aptNoValidUntil says whether the host's apt configuration turns off
// the Release files' expiry check (false without apt-config).
func aptNoValidUntil() bool {
	out, err := exec.Command("apt-config", "dump", "Acquire::Check-Valid-Until").Output()
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k == "Acquire::Check-Valid-Until" {
			v = strings.Trim(v, `";`)
			return v == "false" || v == "no" || v == "0" || v == "off"
		}
	}
	return false
}

// pickArchive takes the first source whose suites are Debian's own (not
// -security) as the mirror, and the first with a -security suite as the
// security archive, falling back on deb.debian.org for either. The
// components of each are those every source of its URI enables.
func pickArchive(srcs []source) archive {
	a := archive{}
	for _, s := range srcs {
		if !debianURI(s.URI) {
			continue
		}
		for _, suite := range s.Suites {
			if isSecurity(suite) {
				if a.Security == "" {
					a.Security = s.URI
				}
			} else if a.Mirror == "" {
				a.Mirror = s.URI
			}
		}
	}
	if a.Mirror == "" {
		a.Mirror = defaultMirror
	}
	if a.Security == "" {
		a.Security = defaultSecurity
	}
	a.Components = components(srcs, a.Mirror, false)
	a.SecurityComponents = components(srcs, a.Security, true)
	return a
}

// components returns the components the sources of uri enable for its
// security suites (security) or its others: main first, then the rest in
// the order the sources give them.
func components(srcs []source, uri string, security bool) []string {
	out := []string{"main"}
	for _, s := range srcs {
		if s.URI != uri {
			continue
		}
		for _, suite := range s.Suites {
			if isSecurity(suite) != security {
				continue
			}
			for _, c := range s.Components {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func isSecurity(suite string) bool {
	return strings.HasSuffix(suite, "-security") || strings.HasSuffix(suite, "/updates")
}

// debianURI says whether uri looks like a Debian archive (…/debian or
// …/debian-security, possibly behind a proxy path), not Ubuntu's or a
// vendor's.
func debianURI(uri string) bool {
	u := strings.TrimSuffix(uri, "/")
	base := u[strings.LastIndex(u, "/")+1:]
	return base == "debian" || base == "debian-security"
}

// parseOneLine parses sources.list lines: "deb [opts] URI SUITE COMP...".
func parseOneLine(data []byte) []source {
	var out []source
	for line := range strings.Lines(string(data)) {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options, possibly several words
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, source{URI: strings.TrimSuffix(f[0], "/"), Suites: []string{f[1]}, Components: f[2:]})
	}
	return out
}

// parseDeb822 parses a .sources file: paragraphs of Types, URIs, Suites,
// Components (and Enabled: no to skip one).
func parseDeb822(data []byte) []source {
	var out []source
	for _, para := range regexp.MustCompile(`\n\s*\n`).Split(string(data), -1) {
		fields := map[string]string{}
		for line := range strings.Lines(para) {
			if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			out = append(out, source{
				URI: strings.TrimSuffix(uri, "/"), Suites: strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
			})
		}
	}
	return out
}

// release is what Get needs from a suite's InRelease file.
type release struct {
	Codename   string
	Date       time.Time
	ValidUntil time.Time // zero when the Release has none (stable suites)
}

// errNoSuite is returned when the archive has no such suite.
var errNoSuite = errors.New("no such suite")

// fetch GETs url, failing on any status but 200 (404 wraps errNoSuite:
// the callers ask for dists/SUITE files).
func (a archive) fetch(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	c := a.client
	if c == nil {
		c = archiveClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("get %s: %s: %w", url, resp.Status, errNoSuite)
		}
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

// releaseTimeout bounds the Release check, so that an archive that does
// not answer falls back on the cache in seconds, not at TCP's timeout;
// connectTimeout bounds its connection, so that an archive that cannot
// be reached at all (a host that drops the packets) falls back sooner.
const (
	releaseTimeout = 20 * time.Second
	connectTimeout = 5 * time.Second
)

// archiveClient is the archive's HTTP client: the default one (proxies
// from the environment) with connectTimeout.
var archiveClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t}
}()

// unreachable says whether err is the archive not answering (no
// connection, no such host, a timeout), not an answer that is wrong.
func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, context.DeadlineExceeded)
}

// errMalformed is release's error for an InRelease file it cannot read.
var errMalformed = errors.New("malformed InRelease")

// release reads base's dists/SUITE/InRelease (only its header: the
// signature is mmdebstrap's to check when it builds).
func (a archive) release(ctx context.Context, base, suite string) (release, error) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	body, err := a.fetch(ctx, base+"/dists/"+suite+"/InRelease")
	if err != nil {
		return release{}, err
	}
	defer body.Close()
	var r release
	sc := bufio.NewScanner(io.LimitReader(body, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") || line == "" && r.Codename != "" {
			break // the file lists follow the header
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Codename":
			r.Codename = v
		case "Date", "Valid-Until":
			t, err := time.Parse(time.RFC1123, v)
			if err != nil {
				t, err = time.Parse(time.RFC1123Z, v)
			}
			if err != nil {
				return release{}, fmt.Errorf("read %s/dists/%s/InRelease: %w: bad %s %q", base, suite, errMalformed, k, v)
			}
			if k == "Date" {
				r.Date = t.UTC()
			} else {
				r.ValidUntil = t.UTC()
			}
		}
	}
	if err := sc.Err(); err != nil {
		return release{}, fmt.Errorf("read %s/dists/%s/InRelease: %w", base, suite, err)
	}
	if r.Date.IsZero() || r.Codename == "" {
		return release{}, fmt.Errorf("read %s/dists/%s/InRelease: %w: no Codename or Date", base, suite, errMalformed)
	}
	// The Codename names the image's key, hence its files in the cache,
	// and comes over plain HTTP unchecked: a suite name, nothing else.
	if !validSuite(r.Codename) {
		return release{}, fmt.Errorf("read %s/dists/%s/InRelease: %w: Codename %q is not a suite name", base, suite, errMalformed, r.Codename)
	}
	return r, nil
}

// suites lists the suites the mirror has, for an error: from its dists/
// index (an HTML directory listing), or, where the mirror serves none
// (deb.debian.org behind some proxies), the codenames of its aliases
// ("trixie (stable)"), read from their InRelease in parallel.
func (a archive) suites(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if body, err := a.fetch(ctx, a.Mirror+"/dists/"); err == nil {
		page, _ := io.ReadAll(io.LimitReader(body, 1<<20))
		body.Close()
		var out []string
		for _, m := range regexp.MustCompile(`href="([a-z][a-z0-9-]*)/"`).FindAllSubmatch(page, -1) {
			if s := string(m[1]); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	aliases := []string{"oldstable", "stable", "testing", "unstable"}
	names := make([]string, len(aliases))
	var wg sync.WaitGroup
	for i, alias := range aliases {
		wg.Go(func() {
			if r, err := a.release(ctx, a.Mirror, alias); err == nil {
				names[i] = r.Codename + " (" + alias + ")"
			}
		})
	}
	wg.Wait()
	return slices.DeleteFunc(names, func(s string) bool { return s == "" })
}

// missingPackages returns the names in pkgs that suite's components
// (the mirror's Components) neither have nor provide, reading their
// Packages indexes. A component the suite lacks (non-free-firmware
// before bookworm) has no index and is skipped.
func (a archive) missingPackages(ctx context.Context, suite, arch string, pkgs []string) ([]string, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	known := map[string]bool{}
	for _, comp := range a.components() {
		url := a.Mirror + "/dists/" + suite + "/" + comp + "/binary-" + arch + "/Packages.gz"
		body, err := a.fetch(ctx, url)
		if errors.Is(err, errNoSuite) && comp != "main" {
			continue
		}
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer body.Close()
			zr, err := gzip.NewReader(body)
			if err != nil {
				return fmt.Errorf("read %s: %w", url, err)
			}
			if err := packageNames(zr, known); err != nil {
				return fmt.Errorf("read %s: %w", url, err)
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !known[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// components are the mirror's components, main when none are set.
func (a archive) components() []string {
	if len(a.Components) == 0 {
		return []string{"main"}
	}
	return a.Components
}

// securityComponents are the security archive's components, main when
// none are set.
func (a archive) securityComponents() []string {
	if len(a.SecurityComponents) == 0 {
		return []string{"main"}
	}
	return a.SecurityComponents
}

// packageNames reads a Packages index into known: the names it has and
// provides.
func packageNames(r io.Reader, known map[string]bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("Package: ")):
			known[string(bytes.TrimSpace(line[len("Package: "):]))] = true
		case bytes.HasPrefix(line, []byte("Provides: ")):
			for p := range strings.SplitSeq(string(line[len("Provides: "):]), ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(p), " ")
				known[name] = true
			}
		}
	}
	return sc.Err()
}
