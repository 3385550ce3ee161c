#!/bin/sh
# build.sh builds the coverage example's programs with coverage
# instrumentation into examples/coverage/bin, which examples/coverage.star
# shares into its machines:
#
#	examples/coverage/build.sh
#	vmlab run -coverage cov/ examples/coverage.star
#
# kv with go build -cover; tally with gcc --coverage, its notes file
# (bin/tally.gcno) beside its object, where the merge finds it for the
# counts the guests write. Rebuilding makes the counts of earlier runs
# unreadable to the merge (another build): run the example again after it.
set -eu
cd "$(dirname "$0")"
mkdir -p bin
go build -cover -o bin/kv ./kv
gcc --coverage -O0 -c -o bin/tally.o tally/tally.c
gcc --coverage -o bin/tally bin/tally.o
