package cli

import "context"

func runBench(ctx context.Context, e *env, args []string) int { return 0 }
