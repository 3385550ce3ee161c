package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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
	client   *http.Client
}

// source is one apt source: a URI and its suites.
type source struct {
	URI    string
	Suites []string
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
	return pickArchive(srcs)
}

// pickArchive takes the first source whose suites are Debian's own (not
// -security) as the mirror, and the first with a -security suite as the
// security archive, falling back on deb.debian.org for either.
func pickArchive(srcs []source) archive {
	a := archive{}
	for _, s := range srcs {
		if !debianURI(s.URI) {
			continue
		}
		for _, suite := range s.Suites {
			if strings.HasSuffix(suite, "-security") || strings.HasSuffix(suite, "/updates") {
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
	return a
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
		out = append(out, source{URI: strings.TrimSuffix(f[0], "/"), Suites: []string{f[1]}})
	}
	return out
}

// parseDeb822 parses a .sources file: paragraphs of Types, URIs, Suites
// (and Enabled: no to skip one).
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
			out = append(out, source{URI: strings.TrimSuffix(uri, "/"), Suites: strings.Fields(fields["suites"])})
		}
	}
	return out
}

// release is what Get needs from a suite's InRelease file.
type release struct {
	Codename string
	Date     time.Time
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
		c = http.DefaultClient
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
// not answer falls back on the cache in seconds, not at TCP's timeout.
const releaseTimeout = 20 * time.Second

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
		case "Date":
			t, err := time.Parse(time.RFC1123, v)
			if err != nil {
				t, err = time.Parse(time.RFC1123Z, v)
			}
			if err != nil {
				return release{}, fmt.Errorf("read %s/dists/%s/InRelease: bad Date %q", base, suite, v)
			}
			r.Date = t.UTC()
		}
	}
	if r.Date.IsZero() || r.Codename == "" {
		return release{}, fmt.Errorf("read %s/dists/%s/InRelease: no Codename or Date", base, suite)
	}
	return r, nil
}

// suites lists the suites in base's dists/ index (an HTML directory
// listing; empty when the archive does not serve one).
func (a archive) suites(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	body, err := a.fetch(ctx, a.Mirror+"/dists/")
	if err != nil {
		return nil
	}
	defer body.Close()
	page, _ := io.ReadAll(io.LimitReader(body, 1<<20))
	var out []string
	for _, m := range regexp.MustCompile(`href="([a-z][a-z0-9-]*)/"`).FindAllSubmatch(page, -1) {
		if s := string(m[1]); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// missingPackages returns the names in pkgs that suite's main component
// neither has nor provides, reading its Packages index.
func (a archive) missingPackages(ctx context.Context, suite, arch string, pkgs []string) ([]string, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	url := a.Mirror + "/dists/" + suite + "/main/binary-" + arch + "/Packages.gz"
	body, err := a.fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	zr, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	known, err := packageNames(zr)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	var missing []string
	for _, p := range pkgs {
		if !known[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// packageNames reads a Packages index: the names it has and provides.
func packageNames(r io.Reader) (map[string]bool, error) {
	known := map[string]bool{}
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
	return known, sc.Err()
}
