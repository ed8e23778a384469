# Helpers for the command-line tests (sourced).  PONDER is the binary under
# test, PONDER_TESTDATA the reference data.
: "${PONDER:=./ponder}"
: "${PONDER_TESTDATA:=../shared/testdata}"
TD=$PONDER_TESTDATA
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_exit CODE DESCRIPTION COMMAND...: runs it, checks the exit code and
# that stderr is one line starting with "ponder" when CODE is not 0.
expect_exit() {
    want=$1; what=$2; shift 2
    "$@" > "$tmp/out" 2> "$tmp/err" < /dev/null
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  stderr: /' "$tmp/err" | head -5
        fails=$((fails + 1)); return 1
    fi
    if [ "$want" -ne 0 ]; then
        lines=$(wc -l < "$tmp/err")
        if [ "$lines" -ne 1 ] || ! grep -q '^ponder' "$tmp/err"; then
            echo "FAIL: $what: expected one 'ponder...' line on stderr, got:"; sed 's/^/  /' "$tmp/err" | head -5
            fails=$((fails + 1)); return 1
        fi
    fi
    echo "ok: $what"
    return 0
}

# ref_gen_ids FILE N: the gen_ids of prompt N (1-based) of a reference
ref_gen_ids() {
    grep -o '"gen_ids": *\[[^]]*\]' "$1" | sed -n "${2}p" | sed 's/.*\[//; s/\]//; s/,//g'
}

finish() {
    [ "$fails" -eq 0 ] && echo "all ok" && exit 0
    echo "$fails failed"; exit 1
}
