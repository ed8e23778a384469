#!/bin/sh
# ponder chat in line mode (stdin or stdout not a terminal): one message per
# line, answers on stdout with no escape codes, reasoning on stderr, every
# turn kept in the history store; and the message when there is no model.
. tests/lib_cli.sh
cat > "$tmp/script" <<'END'
delay 1
think Let me\n
think  think.
answer First \x1b answer.
end
answer Second answer.
end
END
export XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state"

printf 'hello\n\nagain\n' | "$PONDER" chat --script "$tmp/script" -m tiny.gguf \
    > "$tmp/out" 2> "$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q 'First' "$tmp/out" && grep -q 'Second answer.' "$tmp/out"; then
    echo "ok: each line gets its answer on stdout"
else
    echo "FAIL: line mode (exit $rc):"; sed 's/^/  out: /' "$tmp/out"; sed 's/^/  err: /' "$tmp/err"
    fails=$((fails + 1))
fi
grep -q 'think.' "$tmp/err" && ! grep -q 'think.' "$tmp/out" \
    && echo "ok: the reasoning goes to stderr" \
    || { echo "FAIL: reasoning not on stderr only"; fails=$((fails + 1)); }
if grep -q "$(printf '\033')\[" "$tmp/out"; then
    echo "FAIL: escape sequences in line mode"; fails=$((fails + 1))
else echo "ok: no screen escape codes"; fi

printf 'hello\n' | "$PONDER" chat --script "$tmp/script" -m tiny.gguf --reasoning show \
    --no-history > "$tmp/out" 2> "$tmp/err"
grep -q '<think>' "$tmp/out" && grep -q '</think>' "$tmp/out" \
    && echo "ok: --reasoning show writes it inline" \
    || { echo "FAIL: --reasoning show:"; cat "$tmp/out"; fails=$((fails + 1)); }

"$PONDER" history list > "$tmp/list" 2>&1
grep -q 'hello' "$tmp/list" && grep -q ' 4 ' "$tmp/list" \
    && echo "ok: the conversation is stored (4 messages)" \
    || { echo "FAIL: history:"; cat "$tmp/list"; fails=$((fails + 1)); }
"$PONDER" history show 1 > "$tmp/show" 2>&1
grep -q 'Let me' "$tmp/show" && echo "ok: with its reasoning" \
    || { echo "FAIL: no reasoning stored"; cat "$tmp/show"; fails=$((fails + 1)); }

"$PONDER" history export 1 --format json > "$tmp/json" 2>&1
grep -q '"driver": *"line"' "$tmp/json" && echo "ok: its runs record the driver line" \
    || { echo "FAIL: no driver line in the runs:"; head -40 "$tmp/json"; fails=$((fails + 1)); }

# the thinking options apply in line mode too
printf 'hello\n' | "$PONDER" chat --script "$tmp/script" -m tiny.gguf --think off \
    --no-history > "$tmp/out" 2> "$tmp/err"
grep -q 'First' "$tmp/out" && ! grep -q 'think' "$tmp/err" \
    && echo "ok: --think off: an answer and no reasoning" \
    || { echo "FAIL: --think off:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
printf 'hello\n' | "$PONDER" chat --script "$tmp/script" -m tiny.gguf --think-budget 1 \
    --no-history > "$tmp/out" 2> "$tmp/err"
grep -q 'Let me' "$tmp/err" && ! grep -q 'think\.' "$tmp/err" && grep -q 'First' "$tmp/out" \
    && echo "ok: --think-budget 1: one reasoning token, then the answer" \
    || { echo "FAIL: --think-budget:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
# a remote that cannot be reached is one line naming it (port 9: discard, closed)
expect_exit 1 "an unreachable --remote: one line" "$PONDER" chat --remote http://127.0.0.1:9 \
    --no-history
grep -q '127.0.0.1:9' "$tmp/err" && echo "ok: it names the server" \
    || { echo "FAIL: the error does not name the server"; cat "$tmp/err"; fails=$((fails + 1)); }

printf 'more\n' | "$PONDER" chat -c --script "$tmp/script" -m tiny.gguf > /dev/null 2>&1
"$PONDER" history list > "$tmp/list" 2>&1
[ "$(grep -c hello "$tmp/list")" -eq 1 ] && grep -q ' 6 ' "$tmp/list" \
    && echo "ok: -c continues the last conversation" \
    || { echo "FAIL: -c:"; cat "$tmp/list"; fails=$((fails + 1)); }

printf 'hi\n' | "$PONDER" --script "$tmp/script" -m tiny.gguf --no-history > "$tmp/out" 2>&1 \
    && grep -q 'answer' "$tmp/out" && echo "ok: options without a command are chat's" \
    || { echo "FAIL: ponder -m ... is not chat:"; cat "$tmp/out"; fails=$((fails + 1)); }
# with no model found, chat opens the bundled demo model and says so (#6)
printf 'What is 47 + 38?\n' | XDG_DATA_HOME="$tmp/empty" "$PONDER" chat --temp 0 --no-history \
    > "$tmp/out" 2> "$tmp/err" \
    && grep -qF '47 + 38 = 85' "$tmp/out" && grep -q 'demo model' "$tmp/err" \
    && echo "ok: no model: the demo model answers" \
    || { echo "FAIL: no model: the demo model:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
printf 'What is 47 + 38?\n' | XDG_DATA_HOME="$tmp/empty" "$PONDER" --temp 0 --no-history \
    > "$tmp/out" 2>/dev/null && grep -qF '47 + 38 = 85' "$tmp/out" \
    && echo "ok: ponder alone is chat" \
    || { echo "FAIL: ponder alone is chat:"; cat "$tmp/out"; fails=$((fails + 1)); }
grep -q -- '-m' "$tmp/err" && echo "ok: it says how to give one" \
    || { echo "FAIL: no hint"; cat "$tmp/err"; fails=$((fails + 1)); }
expect_exit 1 "a missing model file: one line" "$PONDER" chat -m /nonexistent/x.gguf --no-history
grep -q 'x.gguf' "$tmp/err" && echo "ok: it names the file" \
    || { echo "FAIL: the error does not name the file"; cat "$tmp/err"; fails=$((fails + 1)); }
expect_exit 2 "unknown option" "$PONDER" chat --frobnicate
expect_exit 0 "chat --help" "$PONDER" chat --help
finish
