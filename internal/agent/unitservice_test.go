package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

func TestServiceUnit(t *testing.T) {
	tests := []struct {
		name string
		s    agentproto.Service
		want []string // lines the unit has
		not  []string // prefixes of lines it must not have
	}{
		{"plain", agentproto.Service{Name: "web", Command: "python3 -m http.server 8000"},
			[]string{
				"[Unit]", "StartLimitIntervalSec=0",
				"[Service]", "Type=simple",
				`ExecStart=/bin/sh -c "python3 -m http.server 8000"`,
				"WorkingDirectory=-~",
				"Environment=\"PATH=" + agentproto.DefaultPath + `"`,
				`Environment="HOME=/root"`, `Environment="USER=root"`,
				"Restart=no", "StandardOutput=journal", "SyslogIdentifier=web",
				"[Install]", "WantedBy=multi-user.target",
			},
			[]string{"User=", "ExecStartPost=", "RestartSec=", "TimeoutStartSec="}},
		{"quotes, dollars, percents, backslashes and lines in the command",
			agentproto.Service{Name: "q", Command: "echo \"$HOME\" 'it''s' 100% \\n\nexit 0"},
			[]string{`ExecStart=/bin/sh -c "echo \"$$HOME\" 'it''s' 100%% \\n\nexit 0"`}, nil},
		{"control characters", agentproto.Service{Name: "c", Command: "printf '\x1b[0m\t'"},
			[]string{`ExecStart=/bin/sh -c "printf '\x1b[0m\t'"`}, nil},
		{"user and dir", agentproto.Service{Name: "db", Command: "run", User: "alice", Dir: "/srv/my data"},
			[]string{"User=alice", "WorkingDirectory=/srv/my data"},
			[]string{`Environment="HOME=`, `Environment="USER=`}},
		{"root named", agentproto.Service{Name: "r", Command: "run", User: "root"},
			[]string{`Environment="HOME=/root"`}, []string{"User="}},
		{"env with spaces, quotes, dollars and percents",
			agentproto.Service{Name: "e", Command: "env", Env: []string{"GREETING=hello world", `Q=say "hi"`, "D=$HOME", "P=50%", `B=a\b`, "EMPTY="}},
			// Environment= expands specifiers but not variables.
			[]string{`Environment="GREETING=hello world"`, `Environment="Q=say \"hi\""`, `Environment="D=$HOME"`,
				`Environment="P=50%%"`, `Environment="B=a\\b"`, `Environment="EMPTY="`}, nil},
		{"declared env comes after fast mode's, so it wins",
			agentproto.Service{Name: "p", Command: "env", Env: []string{"PATH=/opt/bin"}},
			[]string{`Environment="PATH=/opt/bin"`}, nil},
		{"restart on-failure", agentproto.Service{Name: "w", Command: "run", Restart: "on-failure"},
			[]string{"Restart=on-failure", "RestartSec=200ms"}, nil},
		{"restart always", agentproto.Service{Name: "w", Command: "run", Restart: "always"},
			[]string{"Restart=always", "RestartSec=200ms"}, nil},
		{"restart no", agentproto.Service{Name: "w", Command: "run", Restart: "no"},
			[]string{"Restart=no"}, []string{"RestartSec="}},
		{"restart empty is no", agentproto.Service{Name: "w", Command: "run"},
			[]string{"Restart=no"}, []string{"RestartSec="}},
		{"ready port", agentproto.Service{Name: "web", Command: "run", ReadyPort: 8080},
			[]string{"ExecStartPost=+@/run/vmlab/agent vmlab-ready port 8080", "TimeoutStartSec=infinity"}, nil},
		{"ready file", agentproto.Service{Name: "web", Command: "run", ReadyFile: "/run/web/ready now"},
			[]string{`ExecStartPost=+@/run/vmlab/agent vmlab-ready file "/run/web/ready now"`}, nil},
		{"ready file relative to /, as fast mode checks it", agentproto.Service{Name: "web", Command: "run", ReadyFile: "tmp/ready"},
			[]string{`ExecStartPost=+@/run/vmlab/agent vmlab-ready file "/tmp/ready"`}, nil},
		{"ready log", agentproto.Service{Name: "web", Command: "run", ReadyLog: `listening on .*:\d+ \$`},
			[]string{`ExecStartPost=+@/run/vmlab/agent vmlab-ready log "listening on .*:\\d+ \\$$"`}, nil},
		{"percent in name and user", agentproto.Service{Name: "w", Command: "run", User: "a%b"},
			[]string{"User=a%%b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := serviceUnit(tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != tt.s.Name+".service" {
				t.Errorf("name %q, want %q", u.Name, tt.s.Name+".service")
			}
			lines := strings.Split(u.Text, "\n")
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("no line %s in\n%s", w, u.Text)
				}
			}
			for _, n := range tt.not {
				if i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, n) }); i >= 0 {
					t.Errorf("unexpected line %s in\n%s", lines[i], u.Text)
				}
			}
			if strings.Count(u.Text, "ExecStart=") != 1 {
				t.Errorf("want one ExecStart= line in\n%s", u.Text)
			}
		})
	}
}

func TestServiceUnitErrors(t *testing.T) {
	tests := []struct {
		name string
		s    agentproto.Service
		want string
	}{
		{"name with a slash", agentproto.Service{Name: "a/b", Command: "run"}, `render service a/b as a unit: "a/b" is not a unit name`},
		{"name with a space", agentproto.Service{Name: "a b", Command: "run"}, "is not a unit name"},
		{"bad restart", agentproto.Service{Name: "w", Command: "run", Restart: "sometimes"}, `restart "sometimes"`},
		{"NUL in command", agentproto.Service{Name: "w", Command: "a\x00b"}, "without NUL"},
		{"env without =", agentproto.Service{Name: "w", Command: "run", Env: []string{"JUSTNAME"}}, "is not NAME=VALUE"},
		{"env name with a space", agentproto.Service{Name: "w", Command: "run", Env: []string{"A B=c"}}, "is not NAME=VALUE"},
		{"relative dir", agentproto.Service{Name: "w", Command: "run", Dir: "srv"}, "want an absolute path"},
		{"user on two lines", agentproto.Service{Name: "w", Command: "run", User: "a\nb"}, "want one line"},
		{"bad pattern", agentproto.Service{Name: "w", Command: "run", ReadyLog: "("}, "wait_for_log"},
		{"port out of range", agentproto.Service{Name: "w", Command: "run", ReadyPort: 70000}, "ready port 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serviceUnit(tt.s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestServiceUnitSystemdParses has the host's systemd (when it has one)
// load a rendered unit: it must not warn about a line, and must read each
// environment entry back as declared.
func TestServiceUnitSystemdParses(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on this host")
	}
	env := []string{"GREETING=hello world", `Q=say "hi" and 'bye'`, "D=$HOME ${HOME}", "P=50%", `B=a\b\n`, "EMPTY="}
	u, err := serviceUnit(agentproto.Service{Name: "q", Command: "echo \"$HOME\" 'it''s' 100% \\n\nexit 0",
		User: "nobody", Env: env, ReadyLog: `listening on .*:\d+ \$`, Restart: "on-failure"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), u.Name)
	if err := os.WriteFile(path, []byte(u.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=debug") // debug dumps the unit as loaded
	out, _ := cmd.CombinedOutput()
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, path+":") && !strings.Contains(line, "Special user nobody") {
			t.Errorf("systemd warns: %s", line)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment: "); ok {
			got = append(got, v)
		}
	}
	if len(got) == 0 {
		t.Skipf("systemd-analyze verify dumped no environment:\n%s", out)
	}
	if len(got) < len(env) || !slices.Equal(got[len(got)-len(env):], env) {
		t.Errorf("systemd read the environment as\n%q\nwant it to end with the declared one:\n%q", got, env)
	}
}
