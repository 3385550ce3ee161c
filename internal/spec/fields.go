package spec

import (
	"reflect"
	"strings"
)

// Keywords returns the keywords of Machine's fields (their `spec` tags, the
// names problems use), in the order the fields are declared. Tests walk
// them to prove that every field can be set from test files, the Go API
// and, where it has a flag, the CLI.
func Keywords() []string {
	var out []string
	walk(reflect.TypeOf(Machine{}), nil, func(kw string, _ []int) { out = append(out, kw) })
	return out
}

// Field returns the field of m called keyword; the zero Value when there is
// none.
func (m *Machine) Field(keyword string) reflect.Value {
	var v reflect.Value
	walk(reflect.TypeOf(*m), nil, func(kw string, index []int) {
		if kw == keyword {
			v = reflect.ValueOf(m).Elem().FieldByIndex(index)
		}
	})
	return v
}

func walk(t reflect.Type, index []int, each func(keyword string, index []int)) {
	for i := range t.NumField() {
		f := t.Field(i)
		at := append(index[:len(index):len(index)], i)
		kw, opts, _ := strings.Cut(f.Tag.Get("spec"), ",")
		if opts == "inline" {
			walk(f.Type, at, each)
			continue
		}
		each(kw, at)
	}
}
