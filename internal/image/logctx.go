package image

import "context"

type logfKey struct{}

// withLogf returns ctx carrying logf, the store's progress log, for what
// the store calls through a hook (UnpackOCI) to report on.
func withLogf(ctx context.Context, logf func(format string, args ...any)) context.Context {
	return context.WithValue(ctx, logfKey{}, logf)
}

// LogfFrom returns the progress log the store passed UnpackOCI in ctx;
// nil when there is none.
func LogfFrom(ctx context.Context) func(format string, args ...any) {
	logf, _ := ctx.Value(logfKey{}).(func(format string, args ...any))
	return logf
}
