package machine

import "testing"

func TestFailedUnits(t *testing.T) {
	show := "Id=x.service\nActiveState=failed\nResult=exit-code\nExecMainCode=1\nExecMainStatus=1\n\n" +
		"Id=web.service\nActiveState=active\nResult=success\nExecMainCode=0\nExecMainStatus=0\n\n" +
		"Id=crash.service\nActiveState=failed\nResult=core-dump\nExecMainCode=3\nExecMainStatus=11\n\n" +
		"Id=slow.service\nActiveState=failed\nResult=timeout\nExecMainCode=0\nExecMainStatus=0\n"
	want := "unit x.service failed (exit-code): its main process exited with status 1\n" +
		"unit crash.service failed (core-dump): its main process was killed by signal 11\n" +
		"unit slow.service failed (timeout)\n"
	if got := failedUnits(show); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := failedUnits(""); got != "" {
		t.Errorf("no units: got %q, want nothing", got)
	}
}
