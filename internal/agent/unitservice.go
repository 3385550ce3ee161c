package agent

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// A declared service() in a guest whose init is systemd is a unit
// NAME.service that does what fast mode's supervisor does (services.go):
//
//   - the command runs with /bin/sh -c, as fast mode runs it (no bash strict
//     mode: a service's command line stands for an ExecStart=), as User=,
//     in its dir or the user's home (or / when the home is missing), with
//     fast mode's environment and the declared one on top;
//   - restart "on-failure" and "always" are systemd's, 200 ms apart
//     (restartDelay) and without systemd's start rate limit, as fast mode
//     restarts without end;
//   - its output goes to the journal under the service's name, and from
//     there (journald forwards to the console) to the machine's console log;
//   - it is wanted by multi-user.target, so it starts at boot;
//   - readiness (wait_for_port, wait_for_file, wait_for_log) is an
//     ExecStartPost= that runs the agent as "vmlab-ready" (ready.go): the
//     unit stays "activating" until it returns, so wait_for_unit (which
//     waits for "active") returns when fast mode's would. With none, the
//     unit is active once started, as in fast mode. TimeoutStartSec= is
//     infinity, as fast mode waits for readiness without a bound; the
//     test's wait_for_unit timeout bounds the wait instead. The check runs
//     with full privileges ("+"), as fast mode's does as root: a user's
//     service cannot read the system journal.

// readyAgentPath is where the boot of a systemd guest puts the agent
// (internal/agent's systemd boot copies itself there before exec'ing
// systemd), which ExecStartPost= runs as the readiness check.
const readyAgentPath = "/run/vmlab/agent"

// serviceUnit renders s as the unit file NAME.service.
func serviceUnit(s agentproto.Service) (agentproto.UnitFile, error) {
	name := s.Name + ".service"
	fail := func(format string, a ...any) (agentproto.UnitFile, error) {
		return agentproto.UnitFile{}, fmt.Errorf("render service %s as a unit: %s", s.Name, fmt.Sprintf(format, a...))
	}
	if !unitNameRE.MatchString(name) || len(name) > 255 {
		return fail("%q is not a unit name (letters, digits and \":_.-\", up to 247 of them)", s.Name)
	}
	restart := s.Restart
	switch restart {
	case "":
		restart = "no"
	case "no", "on-failure", "always":
	default:
		return fail("restart %q: want \"no\", \"on-failure\" or \"always\"", s.Restart)
	}
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# vmlab's rendering of the test's service(%s).", strconv.Quote(s.Name))
	line("[Unit]")
	line("Description=vmlab service %s", specifiers(s.Name))
	line("StartLimitIntervalSec=0")
	line("")
	line("[Service]")
	line("Type=simple")
	cmd, err := execArg(s.Command)
	if err != nil {
		return fail("command: %v", err)
	}
	line("ExecStart=/bin/sh -c %s", cmd)
	post, err := readyCheck(s)
	if err != nil {
		return fail("%v", err)
	}
	if post != "" {
		line("ExecStartPost=+@%s %s %s", readyAgentPath, readyName, post)
		line("TimeoutStartSec=infinity")
	}
	if err := serviceUser(line, s); err != nil {
		return fail("%v", err)
	}
	for _, kv := range serviceEnv(s) {
		q, err := envArg(kv)
		if err != nil {
			return fail("env: %v", err)
		}
		line("Environment=%s", q)
	}
	line("Restart=%s", restart)
	if restart != "no" {
		line("RestartSec=%dms", restartDelay.Milliseconds())
	}
	line("StandardOutput=journal")
	line("StandardError=inherit")
	line("SyslogIdentifier=%s", specifiers(s.Name))
	line("")
	line("[Install]")
	line("WantedBy=multi-user.target")
	return agentproto.UnitFile{Name: name, Text: b.String()}, nil
}

// unitNameRE is what systemd accepts as a unit name (unit_name_is_valid:
// no template instance here).
var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+\.service$`)

// serviceUser writes User= and WorkingDirectory=: the service's dir, else
// the user's home, where fast mode runs it ("-" keeps systemd going in /
// when the home is missing, as fast mode's workDir does).
func serviceUser(line func(string, ...any), s agentproto.Service) error {
	if s.User != "" && s.User != "root" {
		if err := plainValue(s.User); err != nil {
			return fmt.Errorf("user: %v", err)
		}
		line("User=%s", specifiers(s.User))
	}
	if s.Dir == "" {
		line("WorkingDirectory=-~")
		return nil
	}
	if err := plainValue(s.Dir); err != nil || !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("dir %q: want an absolute path on one line", s.Dir)
	}
	line("WorkingDirectory=%s", specifiers(s.Dir))
	return nil
}

// serviceEnv is the environment fast mode gives a service (command in
// exec.go), then the declared one, which wins. systemd sets HOME, USER and
// LOGNAME for a User=; root's are written out.
func serviceEnv(s agentproto.Service) []string {
	env := []string{"PATH=" + agentproto.DefaultPath, "SHELL=" + posixShell.path, "LANG=C.UTF-8", "TERM=dumb"}
	if s.User == "" || s.User == "root" {
		env = append(env, "HOME=/root", "USER=root", "LOGNAME=root")
	}
	return append(env, s.Env...)
}

// readyCheck is the arguments of the readiness check for s, or "" for a
// service that is ready once started.
func readyCheck(s agentproto.Service) (string, error) {
	switch {
	case s.ReadyPort != 0:
		if s.ReadyPort < 0 || s.ReadyPort > 65535 {
			return "", fmt.Errorf("ready port %d: want 1 to 65535", s.ReadyPort)
		}
		return "port " + strconv.Itoa(s.ReadyPort), nil
	case s.ReadyFile != "":
		// Fast mode checks a relative path from the agent's directory, /.
		path, err := execArg(filepath.Join("/", s.ReadyFile))
		if err != nil {
			return "", fmt.Errorf("wait_for_file: %v", err)
		}
		return "file " + path, nil
	case s.ReadyLog != "":
		if _, err := regexp.Compile(s.ReadyLog); err != nil {
			return "", fmt.Errorf("wait_for_log: %v", err)
		}
		re, err := execArg(s.ReadyLog)
		if err != nil {
			return "", fmt.Errorf("wait_for_log: %v", err)
		}
		return "log " + re, nil
	}
	return "", nil
}

// execArg quotes s as one argument of an Exec*= line: in double quotes,
// with C escapes for backslashes, quotes and control characters (a
// command's newlines among them), "%%" for a "%" (specifiers) and "$$" for
// a "$" (systemd's own variable expansion); sh then sees s as written.
func execArg(s string) (string, error) { return quote(s, true) }

// envArg quotes one KEY=VALUE of Environment=, which expands specifiers
// but not variables.
func envArg(kv string) (string, error) {
	k, _, ok := strings.Cut(kv, "=")
	if !ok || !envNameRE.MatchString(k) {
		return "", fmt.Errorf("%q is not NAME=VALUE with NAME of letters, digits and _", kv)
	}
	return quote(kv, false)
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func quote(s string, dollars bool) (string, error) {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return "", fmt.Errorf("%q: want UTF-8 text without NUL", s)
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\\' || r == '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == '%':
			b.WriteString("%%")
		case r == '$' && dollars:
			b.WriteString("$$")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// plainValue checks a value written as it is (User=, WorkingDirectory=):
// one line, no surrounding spaces, which systemd would strip.
func plainValue(s string) error {
	if s == "" || strings.ContainsAny(s, "\n\r\x00") || strings.TrimSpace(s) != s || !utf8.ValidString(s) {
		return fmt.Errorf("%q: want one line of text without surrounding spaces", s)
	}
	return nil
}

// specifiers escapes "%" in a value systemd expands specifiers in.
func specifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }
