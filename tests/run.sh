#!/bin/sh
# Runs every cmocka suite given as an argument, then every tests/cli_*.sh
# script, and prints one closing line: "N passed, N failed".
# Environment: PONDER (the binary under test), PONDER_TESTDATA, BUILD.
passed=0
failed=0
failed_names=""
log=$(mktemp)
for t in "$@"; do
    name=$(basename "$t")
    CMOCKA_MESSAGE_OUTPUT=stdout "$t" > "$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
        # crashed or exited before cmocka's summary
        failed=$((failed + 1))
    fi
    [ "$rc" -ne 0 ] && failed_names="$failed_names $name"
done
for s in tests/cli_*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s")
    echo "[ RUN      ] $name"
    if sh "$s" > "$log" 2>&1; then
        passed=$((passed + 1))
        echo "[       OK ] $name"
    else
        cat "$log"
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "[  FAILED  ] $name"
    fi
done
rm -f "$log"
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
