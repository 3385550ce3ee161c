package report

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// JUnitFile is a JUnit XML report at path, for CI systems to show: one
// testsuite per file, one testcase per test and one per subtest, its
// classname the file and its name the test ("test_x") or subtest
// ("test_x/sub/sub"). A failure carries the error, where in the script it
// happened and the failing command's output; a testcase's system-out holds
// its timeline (commands and their output, logs, boots, network changes),
// a test's its console lines (the last 1 MiB of them), and an attachment
// line for each screenshot (screenshots). In a merged report (vmlab report
// merge) each testcase has the properties shard ("2/4") and host.
func JUnitFile(path string) File {
	return File{path: path, what: "junit", render: renderJUnit}
}

// NewJUnit returns a sink that writes only a JUnit report (NewFiles).
func NewJUnit(path string) Sink { return NewFiles(JUnitFile(path)) }

func renderJUnit(tests []*testRecord, _ string) ([]byte, error) {
	data, err := xml.MarshalIndent(junitReport(tests), "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(data, '\n')...), nil
}

// The XML, as most CI systems read it (Jenkins, GitLab, GitHub actions).
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Timestamp string      `xml:"timestamp,attr,omitempty"`
		Cases     []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string `xml:"name,attr"`
		Classname string `xml:"classname,attr"`
		Time      string `xml:"time,attr"`
		// Properties are a merged report's shard and host.
		Properties *junitProperties `xml:"properties,omitempty"`
		Failure    *junitFailure    `xml:"failure,omitempty"`
		Skipped    *junitSkipped    `xml:"skipped,omitempty"`
		SystemOut  *junitText       `xml:"system-out,omitempty"`
	}
	junitProperties struct {
		Property []junitProperty `xml:"property"`
	}
	junitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitSkipped struct {
		Message string `xml:"message,attr,omitempty"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",cdata"`
	}
	// junitText is text as CDATA, where newlines stay newlines (as
	// character data encoding/xml writes each as "&#xA;"). encoding/xml
	// splits any "]]>" in it; clean has removed what XML does not allow.
	junitText struct {
		Text string `xml:",cdata"`
	}
)

func junitReport(tests []*testRecord) junitSuites {
	var all junitSuites
	var spans []span // of each suite
	index := make(map[string]int)
	var run span
	for _, t := range tests {
		file, _ := splitTestID(t.Name)
		i, ok := index[file]
		if !ok {
			i = len(all.Suites)
			index[file] = i
			all.Suites = append(all.Suites, junitSuite{Name: clean(file)})
			spans = append(spans, span{})
		}
		for _, s := range t.steps() {
			all.Suites[i].Cases = append(all.Suites[i].Cases, junitTestcase(t, s))
		}
		spans[i].add(t.Start, t.Duration)
		run.add(t.Start, t.Duration)
	}
	for i := range all.Suites {
		suite := &all.Suites[i]
		for _, c := range suite.Cases {
			if c.Failure != nil {
				suite.Failures++
			}
			if c.Skipped != nil {
				suite.Skipped++
			}
		}
		suite.Tests = len(suite.Cases)
		suite.Time, suite.Timestamp = spans[i].junit()
		all.Tests += suite.Tests
		all.Failures += suite.Failures
	}
	all.Time, _ = run.junit()
	return all
}

// span is from the first start to the last end of tests: tests run in
// parallel, so a suite took that long, not the sum of its tests.
type span struct{ first, last time.Time }

func (s *span) add(start time.Time, d time.Duration) {
	if s.first.IsZero() || start.Before(s.first) {
		s.first = start
	}
	if end := start.Add(d); end.After(s.last) {
		s.last = end
	}
}

// junit is the span's time and timestamp attributes.
func (s span) junit() (secs, stamp string) {
	if s.first.IsZero() {
		return junitSeconds(0), ""
	}
	return junitSeconds(s.last.Sub(s.first)), s.first.Format(time.RFC3339)
}

// splitTestID splits "flags.test_pass" (script.File.TestID) into the
// file's name and the test's; a name without a file is vmlab's.
func splitTestID(id string) (file, test string) {
	if i := strings.LastIndex(id, "."); i > 0 && i < len(id)-1 {
		return id[:i], id[i+1:]
	}
	return "vmlab", id
}

// junitTestcase is a test or subtest: classname the file, name the test
// ("test_x") or subtest ("test_x/sub/sub"), so CI shows
// "flags.test_x/sub". Its system-out is its timeline (commands with their
// output, logs, boots, network changes) and, for the test, its console.
func junitTestcase(t *testRecord, s *step) junitCase {
	file, test := splitTestID(t.Name)
	c := junitCase{
		Name:      clean(strings.Join(append([]string{test}, s.Path...), "/")),
		Classname: clean(file),
		Time:      junitSeconds(s.Duration),
	}
	if t.Shard != "" || t.Host != "" {
		c.Properties = &junitProperties{[]junitProperty{{"shard", clean(t.Shard)}, {"host", clean(t.Host)}}}
	}
	if s.Skipped {
		c.Skipped = &junitSkipped{Message: clean(s.Error)}
	} else if !s.Passed {
		msg, _, _ := strings.Cut(failureError(s), "\n") // the text has the rest
		c.Failure = &junitFailure{Message: msg, Type: "failure", Text: failureText(s)}
	}
	var out strings.Builder
	if s.Cached != "" {
		fmt.Fprintf(&out, "cached: not run, %s\n", clean(s.Cached))
	}
	writeTimeline(&out, s, t.Start, 0)
	if console := consoleText(&t.console); s == &t.step && console != "" {
		if out.Len() > 0 {
			out.WriteString("\n--- console ---\n")
		}
		out.WriteString(console)
	}
	if shots := screenshots(s); len(shots) > 0 {
		out.WriteString("\n")
		for _, p := range shots {
			out.WriteString("[[ATTACHMENT|" + clean(p) + "]]\n")
		}
	}
	if out.Len() > 0 {
		c.SystemOut = &junitText{out.String()}
	}
	return c
}

// screenshots are the PNG files a step's timeline saved (its subtests'
// too, as its timeline shows them) that exist, newest first, for the
// testcase's attachment lines: "[[ATTACHMENT|path]]", a whole line each,
// is how Jenkins' JUnit attachments and GitLab's test reports find a
// testcase's files in its system-out. GitLab links only a testcase's
// first: newest first, that is the one taken when the test failed. The
// path is the event's, relative to where vmlab ran unless the output
// directory was given absolute (GitLab wants paths relative to the
// project's directory, Jenkins absolute ones).
func screenshots(s *step) []string {
	var out []string
	for _, en := range s.Items {
		if en.Sub != nil {
			out = append(screenshots(en.Sub), out...)
			continue
		}
		f := en.Event.File
		if en.Event.Kind != Command || !strings.EqualFold(filepath.Ext(f), ".png") {
			continue
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			out = append([]string{f}, out...)
		}
	}
	return out
}

// writeTimeline writes what happened in a step, a line per thing, each
// with its time since the test started; subtests nest, indented.
func writeTimeline(b *strings.Builder, s *step, testStart time.Time, depth int) {
	indent := strings.Repeat("  ", depth)
	for _, en := range s.Items {
		if sub := en.Sub; sub != nil {
			fmt.Fprintf(b, "%s%s RUN  %s\n", indent, offset(sub.Start, testStart), clean(sub.Name))
			writeTimeline(b, sub, testStart, depth+1)
			result := "PASS"
			if !sub.Passed {
				result = "FAIL"
			}
			fmt.Fprintf(b, "%s%s %s %s (%s)\n", indent, offset(sub.Start.Add(sub.Duration), testStart), result, clean(sub.Name), seconds(sub.Duration))
			continue
		}
		e := en.Event
		at := indent + offset(e.Time, testStart) + " "
		switch e.Kind {
		case Command:
			b.WriteString(at + commandLine(*e) + "\n")
			if e.File != "" {
				fmt.Fprintf(b, "%s    %s %s\n", indent, fileVerb(e.File), clean(e.File))
			}
			for _, out := range []struct{ name, text string }{{"stdout", e.Stdout}, {"stderr", e.Stderr}} {
				if ls := lines(out.text); len(ls) > 0 {
					fmt.Fprintf(b, "%s    %s:\n", indent, out.name)
					for _, l := range ls {
						fmt.Fprintf(b, "%s      %s\n", indent, l)
					}
				}
			}
		case Log:
			for _, l := range lines(e.Text) {
				b.WriteString(at + prefix(e.Machine) + l + "\n")
			}
		case Boot:
			b.WriteString(at + clean(e.Machine) + ": " + bootText(*e) + "\n")
		case Network:
			b.WriteString(at + networkLine(*e) + "\n")
		}
	}
}

func junitSeconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// failureText is a failure for reading in a CI page: the error, where,
// and the failing command with its output.
func failureText(s *step) string {
	var b strings.Builder
	b.WriteString(failureError(s))
	if s.Source != "" {
		b.WriteString("\n\nfailing line: " + clean(s.Source))
	}
	if where := cleanText(backtrace(s.Where, s.Error)); where != "" {
		b.WriteString("\n\n" + where)
	}
	if cmd := s.FailedCmd; cmd != nil {
		fmt.Fprintf(&b, "\n\n%s$ %s\n%s", clean(cmd.Machine), cleanText(cmd.Command), outcome(cmd))
		// The command's error, unless it is the failure's, shown above.
		if e := commandError(cmd); e != "" && !strings.Contains(failureError(s), strings.TrimSuffix(e, " ...")) {
			b.WriteString(", " + e)
		}
		for _, out := range []struct{ name, text string }{{"stdout", cmd.Stdout}, {"stderr", cmd.Stderr}} {
			if text := cleanText(out.text); text != "" {
				fmt.Fprintf(&b, "\n%s:\n%s", out.name, text)
			}
		}
	}
	return b.String()
}

// consoleText is a test's console lines, each "machine: text".
func consoleText(l *consoleLog) string {
	var b strings.Builder
	if l.dropped > 0 {
		fmt.Fprintf(&b, "[%d earlier bytes of console output dropped]\n", l.dropped)
	}
	for _, line := range l.kept() {
		b.WriteString(line.Machine + ": " + line.Text + "\n")
	}
	return b.String()
}

// fileVerb says what a command did with its file: a screenshot (a PNG) is
// saved, anything else (copy_from_vm's) copied.
func fileVerb(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".png") {
		return "saved"
	}
	return "copied to"
}
