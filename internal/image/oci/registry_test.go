package oci

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vmlab/vmlab/internal/image"
)

const (
	testUser = "vmlab"
	testPass = "s3cret"
)

// authRegistry serves an in-process registry on loopback that wants
// testUser:testPass (HTTP basic auth) for every request, holding img as
// REPO:v1 for each repo. It returns the registry's host:port.
func authRegistry(t *testing.T, img v1.Image, repos ...string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="vmlab test"`)
			http.Error(w, "credentials wanted", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, repo := range repos {
		ref, err := name.ParseReference(host + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: testUser, Password: testPass})); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}
	return host
}

// dockerConfig points the standard keychain at a new docker config
// directory holding config (config.json), and away from the user's own.
func dockerConfig(t *testing.T, config string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// credHelper puts docker-credential-vmlabtest on PATH: a credential helper
// that gives testUser:testPass for any registry.
func credHelper(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread url\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"" + testUser + "\",\"Secret\":\"" + testPass + "\"}\\n' \"$url\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-vmlabtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// A registry that wants credentials is pulled from with those of the
// docker config (auths, a credential helper, a credentials store), and
// refused clearly without them.
func TestRegistryCredentials(t *testing.T) {
	img := newImage(t, "amd64", layer(t, file("etc/hello", "hi")))
	host := authRegistry(t, img, "app")
	ref := host + "/app:v1"
	wantDigest, _ := img.Digest()
	wantID := configDigest(t, img)

	good := []struct{ name, config string }{
		{"auths", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, basicAuth(testUser, testPass))},
		{"credHelpers", fmt.Sprintf(`{"credHelpers": {%q: "vmlabtest"}}`, host)},
		{"credsStore", `{"credsStore": "vmlabtest"}`},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			dockerConfig(t, c.config)
			credHelper(t)
			digest, id, err := Resolve(context.Background(), ref)
			if err != nil || digest != wantDigest.String() || id != wantID {
				t.Fatalf("Resolve(%s) = %s, %s, %v; want %s, %s", ref, digest, id, err, wantDigest, wantID)
			}
			root := t.TempDir()
			if _, err := Unpack(context.Background(), ref, root); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "etc/hello")); string(b) != "hi" {
				t.Errorf("etc/hello: got %q, want hi", b)
			}
		})
	}

	bad := []struct{ name, config string }{
		{"none", ""},
		{"wrong password", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, basicAuth(testUser, "wrong"))},
		{"other registry's", fmt.Sprintf(`{"auths": {"registry.example": {"auth": %q}}}`, basicAuth(testUser, testPass))},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			dockerConfig(t, c.config)
			_, _, err := Resolve(context.Background(), ref)
			if err == nil {
				t.Fatalf("Resolve(%s): no error, want credentials refused", ref)
			}
			for _, want := range []string{"registry " + host + " refused", "docker login " + host, "DOCKER_CONFIG", "credHelpers"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Resolve(%s): error %q does not say %q", ref, err, want)
				}
			}
			t.Logf("error: %v", err)
			if u := (*UnreachableError)(nil); errors.As(err, &u) {
				t.Errorf("Resolve(%s): credentials refused taken as unreachable: %v", ref, err)
			}
			_, err = Unpack(context.Background(), ref, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("Unpack(%s): got %v, want credentials refused", ref, err)
			}
		})
	}
}

// A registry nobody listens at is unreachable, not an answer.
func TestResolveUnreachable(t *testing.T) {
	dockerConfig(t, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	_, _, err = Resolve(context.Background(), host+"/app:v1")
	var u *UnreachableError
	if !errors.As(err, &u) || u.Registry != host || !strings.Contains(err.Error(), "registry "+host+" unreachable") {
		t.Errorf("Resolve from a closed port: got %v, want an UnreachableError naming %s", err, host)
	}
}

// A registry that is no loopback one gets no plain HTTP request, whatever
// the library would try.
func TestHTTPSOnly(t *testing.T) {
	var sent []string
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.URL.String())
		return nil, errors.New("not sent further")
	})
	tr := httpsOnly{next}
	cases := []struct {
		url  string
		sent bool
	}{
		{"http://10.0.0.5:5000/v2/", false},
		{"http://192.168.1.2/v2/", false},
		{"http://registry.example/token", false},
		{"https://10.0.0.5:5000/v2/", true},
		{"http://127.0.0.1:5000/v2/", true},
		{"http://localhost:5000/v2/", true},
		{"http://[::1]:5000/v2/", true},
		{"http://localhost/v2/", true},
	}
	for _, c := range cases {
		sent = nil
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		_, err := tr.RoundTrip(req)
		if got := len(sent) == 1; got != c.sent {
			t.Errorf("%s: sent %v, want %v (error %v)", c.url, got, c.sent, err)
		}
		if !c.sent && (err == nil || !strings.Contains(err.Error(), "plain HTTP to "+req.URL.Host+" refused")) {
			t.Errorf("%s: error %v, want plain HTTP refused", c.url, err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestStoreGetsRegistry: the image store pulls a registry reference with
// the docker config's credentials, keys it by the image's ID (as a layout
// of the same image), and uses it offline once the registry is gone.
func TestStoreGetsRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mkfs.erofs (-short runs the tests that need no tools)")
	}
	img := newImage(t, "amd64", layer(t, dir("bin/"), file("bin/hello", "#!/bin/sh\necho hi\n")))
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="vmlab test"`)
			http.Error(w, "credentials wanted", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dockerConfig(t, fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, basicAuth(testUser, testPass)))
	tag, _ := name.ParseReference(host + "/hello:v1")
	if err := remote.Write(tag, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatal(err)
	}
	ref, err := image.ParseRef(host + "/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	store := &image.Store{Dir: t.TempDir(), Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	first, err := store.Get(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := configDigest(t, img); first.Digest != want || first.Ref != ref.String() {
		t.Errorf("image %+v: want digest %s, ref %s", first, want, ref)
	}
	layoutRef, _ := image.ParseRef("oci:" + writeLayout(t, img, "v1"))
	if same, err := store.Get(context.Background(), layoutRef, nil); err != nil || same.Key != first.Key {
		t.Errorf("the same image from a layout: %+v, %v; want the cached %s", same, err, first.Key)
	}
	srv.Close()
	logs = nil
	offline, err := store.Get(context.Background(), ref, nil)
	if err != nil || offline.Key != first.Key {
		t.Fatalf("Get with the registry gone: %+v, %v; want the cached %s", offline, err, first.Key)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "registry "+host+" unreachable") || !strings.Contains(strings.Join(logs, "\n"), "using the cached image "+first.Key) {
		t.Errorf("progress output %q: want it to say the registry is unreachable and the cached image is used", logs)
	}
	other, _ := image.ParseRef(host + "/other:v1")
	_, err = store.Get(context.Background(), other, nil)
	if err == nil || !strings.Contains(err.Error(), "reach the registry "+host) || !strings.Contains(err.Error(), "no image of "+other.String()+" cached") {
		t.Errorf("Get of an uncached reference offline: got %v, want an error naming the registry and that nothing is cached", err)
	}
}

// An image of another architecture is refused when resolved, naming it.
func TestResolveRefusesOtherArch(t *testing.T) {
	dockerConfig(t, "")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/arm:1"
	tag, _ := name.ParseReference(ref)
	if err := remote.Write(tag, newImage(t, "arm64", layer(t, file("arch", "arm64")))); err != nil {
		t.Fatal(err)
	}
	_, _, err := Resolve(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "image is for linux/arm64") || !strings.Contains(err.Error(), "amd64 image") {
		t.Errorf("Resolve(%s): got %v, want an error naming linux/arm64", ref, err)
	}
}
