#!/bin/sh
# Runs every Check test binary in $1/tests and sums their results into one
# closing line. Exits non-zero when any suite fails.
build=${1:-build}
pass=0; fail=0; status=0
for t in "$build"/tests/check_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out" | grep -vE '^Running suite' 
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -1)
	checks=$(printf '%s' "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	failures=$(printf '%s' "$line" | sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/')
	[ -n "$checks" ] || { checks=0; failures=1; }
	f=$(($failures)); pass=$((pass + checks - f)); fail=$((fail + f))
	[ $rc -eq 0 ] && [ "$f" -eq 0 ] || { status=1; echo "FAILED: $t (exit $rc)"; }
done
# Python unit tests (tests/unit/test_*.py) for the programs under executor/python
here=$(dirname "$0")
if ls "$here"/test_*.py >/dev/null 2>&1; then
	out=$(cd "$here" && /usr/bin/python3 -B -m unittest test_*.py 2>&1); rc=$?
	# all of it when something failed: the tracebacks name the test
	if [ $rc -eq 0 ]; then printf '%s\n' "$out" | tail -n 4; else printf '%s\n' "$out"; fi
	ran=$(printf '%s\n' "$out" | sed -nE 's/^Ran ([0-9]+) tests?.*/\1/p')
	bad=$(printf '%s\n' "$out" | sed -nE 's/.*FAILED \((.*)\).*/\1/p' | grep -oE '[0-9]+' | paste -sd+ -)
	[ -n "$ran" ] || { ran=0; bad=1; }
	bad=$((${bad:-0})); pass=$((pass + ran - bad)); fail=$((fail + bad))
	[ $rc -eq 0 ] || { status=1; echo "FAILED: python unittest (exit $rc)"; }
fi
echo "[$build]"; echo "unit: $pass passed, $fail failed"
exit $status
