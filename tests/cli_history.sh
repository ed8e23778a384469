#!/bin/sh
# ponder history and ponder stats on a store written by tools/crashwriter:
# listing, showing, searching, exporting, removing, statistics, usage and
# runtime errors, the default path, and a writer killed with SIGKILL mid-reply.
. tests/lib_cli.sh
CW=${BUILD:-build}/tools/crashwriter
DB=$tmp/h.db
export TZ=UTC

check() {   # check DESCRIPTION COMMAND...: a shell test on the last output
    what=$1; shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; sed 's/^/  out: /' "$tmp/out" | head -20; fails=$((fails + 1)); fi
}
has() { grep -q -- "$1" "$tmp/out"; }
hasnt() { ! grep -q -- "$1" "$tmp/out"; }

if [ ! -x "$CW" ]; then echo "FAIL: $CW is not built"; exit 1; fi
"$CW" fixture "$DB" || { echo "FAIL: crashwriter fixture"; exit 1; }

expect_exit 0 "history list" "$PONDER" history list --db "$DB"
check "list has a header and three conversations" test "$(wc -l < "$tmp/out")" -eq 4
check "the pinned conversation comes first" sh -c "sed -n 2p '$tmp/out' | grep -q '^3\*  *.*Pinned notes'"
check "the newest comes next" sh -c "sed -n 3p '$tmp/out' | grep -q '^2 .*R1-Distill-Llama-8B  *What is 17'"
check "median speed and title of the first" sh -c "sed -n 4p '$tmp/out' | grep -q '^1 .* 4  *42.0  R1-Distill-Qwen-1.5B  *Why do zebras'"
expect_exit 0 "history list --limit 1" "$PONDER" history list --limit 1 --db "$DB"
check "one row" test "$(wc -l < "$tmp/out")" -eq 2

expect_exit 0 "history show" "$PONDER" history show 1 --db "$DB"
check "show prints Markdown with reasoning" has "<summary>Reasoning</summary>"
check "show has the answer" has "Zebra stripes most likely keep biting flies away."
check "show has the model" has "## Assistant (R1-Distill-Qwen-1.5B)"
expect_exit 0 "history show --no-reasoning" "$PONDER" history show 1 --no-reasoning --db "$DB"
check "no reasoning" hasnt "horsefly"

expect_exit 0 "search an answer" "$PONDER" history search stripes --db "$DB"
check "found in conversation 1's answer" has "^1  answer .*Why do zebras have stripes?: .*\*\*stripes\*\*"
check "and in its question" has "^1  user .*Why do zebras have stripes?: Why do zebras have \*\*stripes\*\*?"
expect_exit 0 "search reasoning only" "$PONDER" history search horsefly --in reasoning --db "$DB"
check "found in reasoning" has "^1  reasoning"
expect_exit 0 "search answers only misses reasoning" "$PONDER" history search horsefly --in answers --db "$DB"
check "nothing in answers" test ! -s "$tmp/out"
expect_exit 0 "search text is literal" "$PONDER" history search 'NEAR(' '"x' OR --db "$DB"

expect_exit 0 "export JSON to a file" "$PONDER" history export 2 --format json -o "$tmp/c2.json" --db "$DB"
cp "$tmp/c2.json" "$tmp/out" 2>/dev/null || : > "$tmp/out"
check "JSON has the run" has '"gen_tps": 120,'
check "JSON has the reasoning" has '"reasoning": "17 \* 20 = 340'
check "no temporary file left" test ! -e "$tmp/c2.json.tmp"
expect_exit 0 "export Markdown to stdout" "$PONDER" history export 2 --db "$DB"
check "Markdown title" has "^# What is 17 \* 23?"
expect_exit 0 "export without reasoning" "$PONDER" history export 2 --format json --no-reasoning --db "$DB"
check "reasoning left out" has '"reasoning": "",'
expect_exit 1 "export to an unwritable place" "$PONDER" history export 2 -o /nonexistent/dir/x.md --db "$DB"

expect_exit 0 "stats" "$PONDER" stats --db "$DB"
check "one row per model and device" test "$(wc -l < "$tmp/out")" -eq 3
check "qwen on the CPU: median 42.0, p95 43.8" has "^R1-Distill-Qwen-1.5B  *cpu  *EPYC 7B13  *2  .*42.0/43.8"
expect_exit 0 "stats --model" "$PONDER" stats --model llama --db "$DB"
check "only llama" sh -c "test \$(wc -l < '$tmp/out') -eq 2 && grep -q 'vulkan  *RTX 4090' '$tmp/out'"
expect_exit 0 "stats for no such model" "$PONDER" stats -m mistral --db "$DB"
check "says so on stderr" grep -q "no runs of a model matching 'mistral'" "$tmp/err"

expect_exit 0 "history rm" "$PONDER" history rm 2 --db "$DB"
expect_exit 1 "a removed conversation is gone" "$PONDER" history show 2 --db "$DB"
grep -q "no conversation 2" "$tmp/err" || { echo "FAIL: unclear message for a missing conversation"; fails=$((fails + 1)); }
expect_exit 1 "rm twice" "$PONDER" history rm 2 --db "$DB"

expect_exit 2 "history without a subcommand" "$PONDER" history --db "$DB"
expect_exit 2 "unknown subcommand" "$PONDER" history frob --db "$DB"
expect_exit 2 "show without an ID" "$PONDER" history show --db "$DB"
expect_exit 2 "a non-numeric ID" "$PONDER" history show abc --db "$DB"
expect_exit 2 "bad --in" "$PONDER" history search x --in both --db "$DB"
expect_exit 2 "bad --format" "$PONDER" history export 1 --format pdf --db "$DB"
expect_exit 2 "--in outside search" "$PONDER" history list --in answers --db "$DB"
expect_exit 2 "search without text" "$PONDER" history search --db "$DB"
expect_exit 2 "stats with an argument" "$PONDER" stats extra --db "$DB"
expect_exit 2 "unknown option" "$PONDER" history list --frobnicate
expect_exit 0 "history --help" "$PONDER" history --help
expect_exit 0 "stats --help" "$PONDER" stats --help

expect_exit 1 "a missing --db file" "$PONDER" history list --db /nonexistent/x.db
printf 'SQLite format 3 but then nothing sensible at all, just words and words and words.............' > "$tmp/bad.db"
expect_exit 1 "a damaged store" "$PONDER" history list --db "$tmp/bad.db"
grep -q "bad.db" "$tmp/err" || { echo "FAIL: the error does not name the file"; fails=$((fails + 1)); }

# the default store: $XDG_DATA_HOME/ponder/ponder.db, private
expect_exit 0 "the default store is created" env XDG_DATA_HOME="$tmp/xdg" "$PONDER" history list
check "mode 0600 in a 0700 folder" sh -c "test \$(stat -c %a '$tmp/xdg/ponder/ponder.db') = 600 && test \$(stat -c %a '$tmp/xdg/ponder') = 700"

# a writer killed with SIGKILL mid-reply: the next start recovers its text
: > "$tmp/stream"
"$CW" stream "$tmp/s.db" > "$tmp/stream" 2>&1 &
pid=$!
i=0
while [ "$(wc -l < "$tmp/stream")" -lt 40 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid
wait $pid 2>/dev/null
last=$(tail -n 1 "$tmp/stream")
conv=$(sed -n 's/^conversation //p' "$tmp/stream")
expect_exit 0 "the killed writer's conversation opens" "$PONDER" history show "$conv" --db "$tmp/s.db"
check "its reply is marked interrupted" has "(interrupted)"
check "its reasoning is kept" has "piece 0 piece 1"
check "every piece reported committed is there (up to $last)" has "piece $last\( \|\$\)"

finish
