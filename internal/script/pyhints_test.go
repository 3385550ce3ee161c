package script

import (
	"strings"
	"testing"
)

// TestPythonHints: Python with no Starlark form is refused at the
// construct's file:line:col with what to write instead and a pointer to
// the porting table, not the parser's "got with, want primary expression".
func TestPythonHints(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"with subtest", "def test():\n    with subtest(\"x\"):\n        pass\n",
			`p.star:2:5: Python's with is not Starlark: write subtest("name", fn) for "with subtest"`},
		{"f-string", "def test():\n    x = f\"{1}\"\n",
			`p.star:2:9: Starlark has no f-strings: write "%s" % x or "{}".format(x)`},
		{"f-string argument", "def test():\n    print(f'{a}')\n",
			`p.star:2:11: Starlark has no f-strings`},
		{"try", "def test():\n    try:\n        pass\n    except Exception:\n        pass\n",
			`p.star:2:5: Python's try is not Starlark: Starlark has no exceptions: run the command with execute() and check its status`},
		{"import", "import re\ndef test():\n    pass\n",
			`p.star:1:1: Python's import is not Starlark: Starlark has no import: re, time and json are there already; delete the line`},
		{"from import", "from os import path\ndef test():\n    pass\n",
			`p.star:1:1: Python's from is not Starlark: Starlark has no import`},
		{"assert", "def test():\n    assert 1 == 1, \"x\"\n",
			`p.star:2:5: Python's assert is not Starlark: write assert_true(condition, "message"), or assert_eq(a, b)`},
		{"class", "class A:\n    pass\ndef test():\n    pass\n",
			`p.star:1:1: Python's class is not Starlark: Starlark has no classes`},
		{"raise", "def test():\n    raise Exception(\"x\")\n",
			`p.star:2:5: Python's raise is not Starlark: write fail("message")`},
		{"decorator", "@polling_condition\ndef c():\n    pass\ndef test():\n    pass\n",
			`p.star:1:1: Starlark has no decorators: for @polling_condition write polling_condition(condition, fn)`},
		{"create_machine", "def test():\n    create_machine({})\n",
			`p.star:2:5: undefined: create_machine: declare every machine at the top level with machine(...) instead`},
		{"unittest's t", "def test():\n    t.assertEqual(1, 1)\n",
			`p.star:2:5: undefined: t: NixOS's t (unittest's assertions) is assert_eq(a, b)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("p.star", []byte(tt.src))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !strings.Contains(err.Error(), `(see "Porting from NixOS" in docs/test-files.md)`) {
				t.Errorf("got %v, want %q ... and the porting table", err, tt.want)
			}
		})
	}
	// Mistakes that are not Python's keep the parser's words.
	_, err := Load("p.star", []byte("def test():\n    x = (1\n"))
	if err == nil || strings.Contains(err.Error(), "Porting") {
		t.Errorf("an unclosed parenthesis: got %v, want the parser's error alone", err)
	}
}
