package agent

// A minimal rendering of a declared service as a unit, for the systemd
// guest's boot until the sys-wait branch's full one (readiness, restart
// policy, environment quoting) replaces this file at merge.

import (
	"fmt"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// serviceUnit renders s as a unit wanted by multi-user.target.
func serviceUnit(s agentproto.Service) (agentproto.UnitFile, error) {
	if s.Name == "" || strings.ContainsAny(s.Name, "/\n") {
		return agentproto.UnitFile{}, fmt.Errorf("render service %q as a unit: bad name", s.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=vmlab service %s\n\n[Service]\n", s.Name)
	fmt.Fprintf(&b, "ExecStart=/bin/sh -c %s\n", unitQuote(s.Command))
	if s.User != "" {
		fmt.Fprintf(&b, "User=%s\n", s.User)
	}
	if s.Dir != "" {
		fmt.Fprintf(&b, "WorkingDirectory=%s\n", s.Dir)
	}
	for _, e := range s.Env {
		fmt.Fprintf(&b, "Environment=%s\n", unitQuote(e))
	}
	if s.Restart != "" {
		fmt.Fprintf(&b, "Restart=%s\n", s.Restart)
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return agentproto.UnitFile{Name: unitName(s.Name), Text: b.String()}, nil
}

// unitQuote quotes s as one word of a unit file's command line: double
// quotes, with backslashes, quotes, specifiers (%) and variables ($)
// escaped.
func unitQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$", "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
