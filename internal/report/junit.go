package report

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// JUnitFile is a JUnit XML report at path, for CI systems to show: one
// testsuite for the run, one testcase per test and one per subtest (named
// "test/sub/sub"). A failure carries the error, where in the script it
// happened and the failing command's output; a test's system-out holds its
// console lines (the last 1 MiB of them).
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
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitFailure `xml:"failure,omitempty"`
		Skipped   *junitSkipped `xml:"skipped,omitempty"`
		SystemOut *junitText    `xml:"system-out,omitempty"`
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
	suite := junitSuite{Name: "vmlab"}
	var first, last time.Time
	for _, t := range tests {
		for _, s := range t.steps() {
			suite.Cases = append(suite.Cases, junitTestcase(t, s))
		}
		if first.IsZero() || t.Start.Before(first) {
			first = t.Start
		}
		if end := t.Start.Add(t.Duration); end.After(last) {
			last = end
		}
	}
	for _, c := range suite.Cases {
		if c.Failure != nil {
			suite.Failures++
		}
		if c.Skipped != nil {
			suite.Skipped++
		}
	}
	suite.Tests = len(suite.Cases)
	// Tests run in parallel: the run took from the first start to the
	// last end, not the sum of the tests.
	suite.Time = junitSeconds(last.Sub(first))
	if !first.IsZero() {
		suite.Timestamp = first.Format(time.RFC3339)
	}
	return junitSuites{Tests: suite.Tests, Failures: suite.Failures, Time: suite.Time, Suites: []junitSuite{suite}}
}

func junitTestcase(t *testRecord, s *step) junitCase {
	c := junitCase{
		Name:      clean(strings.Join(append([]string{t.Name}, s.Path...), "/")),
		Classname: clean(t.Name),
		Time:      junitSeconds(s.Duration),
	}
	if s.Skipped {
		c.Skipped = &junitSkipped{Message: clean(s.Error)}
	} else if !s.Passed {
		c.Failure = &junitFailure{Message: failureError(s), Type: "failure", Text: failureText(s)}
	}
	if out := consoleText(&t.console); s == &t.step && out != "" {
		c.SystemOut = &junitText{out}
	}
	return c
}

func junitSeconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// failureText is a failure for reading in a CI page: the error, where,
// and the failing command with its output.
func failureText(s *step) string {
	var b strings.Builder
	b.WriteString(failureError(s))
	if where := cleanText(backtrace(s.Where, s.Error)); where != "" {
		b.WriteString("\n\n" + where)
	}
	if cmd := s.FailedCmd; cmd != nil {
		fmt.Fprintf(&b, "\n\n%s$ %s\nexit %d", clean(cmd.Machine), cleanText(cmd.Command), cmd.Exit)
		if e := commandError(cmd); e != "" {
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
