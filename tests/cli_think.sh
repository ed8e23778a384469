#!/bin/sh
# The thinking budget (issue #9) through the command line: ponder run
# --think-budget N [--think-mode hard] and --think off with the demo model,
# recorded with --db and read back with ponder history show / export.  The
# demo model reasons for about 57 tokens on its own, so the budgets here are
# below that.
. tests/lib_cli.sh
M=${DEMO_MODEL:-share/models/ponder-demo.gguf}
[ -f "$M" ] || { echo "FAIL: $M is missing"; exit 1; }
Q="What is 47 + 38?"
db=$tmp/h.db

# reasoning_of FILE: the reasoning token count of a -v stats line
reasoning_of() {
    sed -n 's/.*reasoning \([0-9]*\) tokens in.*/\1/p' "$1" | head -n 1
}

# check WHAT CONDITION...: prints ok or FAIL
check() {
    what=$1; shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

# absent PATTERN FILE: true when no line of FILE matches
absent() {
    ! grep -q "$1" "$2"
}

# the demo model on its own: the budgets below cut it short
expect_exit 0 "no budget" "$PONDER" run -m "$M" -p "$Q" --seed 3 -v --reasoning hide
natural=$(reasoning_of "$tmp/err")
check "the demo model reasons for more than 30 tokens by itself ($natural)" [ "${natural:-0}" -gt 30 ]
check "no budget, no budget line" absent "thinking budget" "$tmp/err"

# hard: exactly N reasoning tokens, then an answer
expect_exit 0 "hard budget 16" "$PONDER" run -m "$M" -p "$Q" --seed 3 -v --reasoning hide \
    --think-budget 16 --think-mode hard --db "$db"
check "hard: 16 reasoning tokens" [ "$(reasoning_of "$tmp/err")" = 16 ]
check "hard: -v says the budget was reached" \
    grep -q "thinking budget: 16 tokens (hard), reached after 16 reasoning tokens" "$tmp/err"
check "hard: an answer follows" grep -q '[^[:space:]]' "$tmp/out"
check "hard: recorded as conversation 1" grep -q "recorded as conversation 1 in" "$tmp/err"

# soft: pushed from 80 % of N, closed within N + 64
expect_exit 0 "soft budget 24" "$PONDER" run -m "$M" -p "$Q" --seed 3 -v --reasoning hide \
    --think-budget 24 --db "$db"
r=$(reasoning_of "$tmp/err")
check "soft: between 19 and 24 + 64 reasoning tokens ($r)" [ "${r:-0}" -ge 19 ] && [ "${r:-999}" -le 88 ]
check "soft: fewer than on its own ($r < $natural)" [ "${r:-999}" -lt "${natural:-0}" ]
check "soft: -v says the budget was reached" \
    grep -q "thinking budget: 24 tokens (soft), reached after $r reasoning tokens" "$tmp/err"

# off: an answer, no reasoning at all
expect_exit 0 "--think off" "$PONDER" run -m "$M" -p "$Q" --seed 3 -v --think off --db "$db"
check "off: no reasoning tokens" [ "$(reasoning_of "$tmp/err")" = 0 ]
check "off: -v says so" grep -q "^thinking: off" "$tmp/err"
check "off: an answer" grep -q '[^[:space:]]' "$tmp/out"
check "off: no reasoning on stderr" \
    [ "$(grep -v -e '^prompt:' -e '^thinking:' -e '^recorded as' -e '^model:' -e '^plan:' \
          -e '^note:' "$tmp/err" | grep -c '[^[:space:]]')" = 0 ]

# the store has all three
expect_exit 0 "history show 1" "$PONDER" history show 1 --db "$db"
check "show: hard budget recorded" grep -q "; 16 reasoning tokens, budget 16 (hard), reached\*" "$tmp/out"
check "show: hard reasoning kept" grep -q "<summary>Reasoning</summary>" "$tmp/out"
expect_exit 0 "history show 2" "$PONDER" history show 2 --db "$db"
check "show: soft budget recorded" grep -q "; $r reasoning tokens, budget 24 (soft), reached\*" "$tmp/out"
expect_exit 0 "history show 3" "$PONDER" history show 3 --db "$db"
check "show: thinking off recorded" grep -q "; thinking off\*" "$tmp/out"
check "show: no reasoning block when off" absent "<summary>Reasoning" "$tmp/out"
expect_exit 0 "history export 1 --format json" "$PONDER" history export 1 --format json --db "$db"
check "json: think_budget" grep -q '"think_budget": 16,' "$tmp/out"
check "json: think_mode" grep -q '"think_mode": "hard",' "$tmp/out"
check "json: think_off" grep -q '"think_off": false,' "$tmp/out"
check "json: budget_reached" grep -q '"budget_reached": true' "$tmp/out"
check "json: reasoning_tokens" grep -q '"reasoning_tokens": 16,' "$tmp/out"
expect_exit 0 "history export 3 --format json" "$PONDER" history export 3 --format json --db "$db"
check "json: off" grep -q '"think_off": true,' "$tmp/out"
check "json: off has no reasoning" grep -q '"reasoning": "",' "$tmp/out"

# bad values are usage errors
expect_exit 2 "--think-budget -1" "$PONDER" run -m "$M" -p "$Q" --think-budget -1
expect_exit 2 "--think-mode medium" "$PONDER" run -m "$M" -p "$Q" --think-mode medium
expect_exit 2 "--think maybe" "$PONDER" run -m "$M" -p "$Q" --think maybe
finish
