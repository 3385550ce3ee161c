package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestBenchKeysDocumented walks the JSON keys of `vmlab bench --json`
// (benchResult and the sections it embeds): docs/cli.md's table names
// each one.
func TestBenchKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## `vmlab bench`")
	keys := benchKeys(reflect.TypeFor[benchResult]())
	if len(keys) < 30 {
		t.Fatalf("found %d keys in benchResult: the walk misses the embedded sections", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(table, "`"+k+"`") {
			t.Errorf("bench key %s is not in docs/cli.md's `vmlab bench` table", k)
		}
	}
}

// benchKeys are the JSON names of t's fields, embedded structs' included.
func benchKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if f.Anonymous {
			keys = append(keys, benchKeys(f.Type)...)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}
