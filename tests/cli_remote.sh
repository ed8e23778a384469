#!/bin/sh
# Remote engines (issue #10): `ponder run --remote` and `ponder chat --remote`
# against `ponder serve` with the demo model (the same answer as the local
# model, the reply stored under NAME@HOST:PORT), and against a fake server
# (tests/remote_fake.mjs) for what other servers do: <think> inside content,
# CRLF, keep-alives, 401, 500, a dropped connection.  The chat runs in tmux.
. tests/lib_cli.sh
M=${DEMO_MODEL:-share/models/ponder-demo.gguf}
export XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" XDG_CONFIG_HOME="$tmp/config"
mkdir -p "$tmp/data" "$tmp/state" "$tmp/config"
T="tmux -L ponder-remote-$$"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    $T kill-server 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
Q='What is 47 + 38?'

# ---- against ponder serve ----
"$PONDER" serve -m "$M" --port 0 --db "$tmp/serve.db" > "$tmp/serve.log" 2>&1 &
pids="$pids $!"
i=0
while [ $i -lt 300 ] && ! grep -q 'loaded' "$tmp/serve.log"; do sleep 0.1; i=$((i + 1)); done
URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/serve.log" | head -n 1)
HOSTPORT=${URL#http://}
if [ -z "$URL" ] || ! grep -q loaded "$tmp/serve.log"; then
    echo "FAIL: ponder serve did not start:"; sed 's/^/  /' "$tmp/serve.log"; exit 1
fi
echo "ok: ponder serve listens on $URL"

"$PONDER" run -m "$M" --temp 0 -p "$Q" > "$tmp/local.out" 2> "$tmp/local.err"
"$PONDER" run --remote "$URL" --temp 0 -p "$Q" --db "$tmp/run.db" \
    > "$tmp/remote.out" 2> "$tmp/remote.err"
rc=$?
if [ $rc -eq 0 ] && grep -qF '47 + 38 = 85' "$tmp/remote.out" \
        && cmp -s "$tmp/local.out" "$tmp/remote.out"; then
    echo "ok: run --remote answers as the local model does (stdout identical)"
else
    echo "FAIL: run --remote (exit $rc):"; sed 's/^/  remote: /' "$tmp/remote.out" "$tmp/remote.err"
    sed 's/^/  local: /' "$tmp/local.out"; fails=$((fails + 1))
fi
# the reasoning goes to stderr, as for a local model
grep -v '^recorded' "$tmp/local.err" > "$tmp/l"; grep -v '^recorded' "$tmp/remote.err" > "$tmp/r"
cmp -s "$tmp/l" "$tmp/r" && [ -s "$tmp/r" ] \
    && echo "ok: the reasoning goes to stderr, the same as local" \
    || { echo "FAIL: reasoning differs:"; diff "$tmp/l" "$tmp/r" | head; fails=$((fails + 1)); }
"$PONDER" history --db "$tmp/run.db" show 1 > "$tmp/show" 2>&1
grep -qF "ponder-demo@$HOSTPORT" "$tmp/show" \
    && echo "ok: the store records the reply under ponder-demo@$HOSTPORT" \
    || { echo "FAIL: history:"; sed 's/^/  /' "$tmp/show" | head; fails=$((fails + 1)); }
"$PONDER" stats --db "$tmp/run.db" > "$tmp/stats" 2>&1
grep "ponder-demo@$HOSTPORT" "$tmp/stats" | grep -q remote \
    && echo "ok: stats shows the remote run (backend remote)" \
    || { echo "FAIL: stats:"; cat "$tmp/stats"; fails=$((fails + 1)); }
# the context ponder serve reports in /v1/models is the remote model's (not 0)
CTX=$(sed -n 's/.*loaded (.*context \([0-9][0-9]*\)).*/\1/p' "$tmp/serve.log" | head -n 1)
"$PONDER" history --db "$tmp/run.db" export 1 --format json > "$tmp/export" 2>&1
[ -n "$CTX" ] && [ "$CTX" -gt 0 ] && grep -q "\"n_ctx\": $CTX," "$tmp/export" \
    && echo "ok: the remote run has the server's context ($CTX)" \
    || { echo "FAIL: remote context (serve says '$CTX'):"; grep n_ctx "$tmp/export";
         fails=$((fails + 1)); }
"$PONDER" run --remote "$URL/v1/" -m ponder-demo --temp 0 -p "$Q" > "$tmp/out" 2>/dev/null \
    && cmp -s "$tmp/out" "$tmp/local.out" \
    && echo "ok: a URL ending in /v1/ and -m with the server's name" \
    || { echo "FAIL: /v1/ URL:"; cat "$tmp/out"; fails=$((fails + 1)); }
"$PONDER" run --remote "$URL" --temp 0 -p "$Q" -v > /dev/null 2> "$tmp/err"
grep -q 'first token after' "$tmp/err" \
    && echo "ok: -v prints the timings measured here" \
    || { echo "FAIL: -v:"; cat "$tmp/err"; fails=$((fails + 1)); }

expect_exit 1 "an unknown model: one line" "$PONDER" run --remote "$URL" -m nosuch -p hi
grep -q "no model 'nosuch' (it has: ponder-demo)" "$tmp/err" && echo "ok: it lists the server's" \
    || { echo "FAIL: unknown model message:"; cat "$tmp/err"; fails=$((fails + 1)); }
# a port nothing listens on (the server's, after it stops, is not safe: use 9)
expect_exit 1 "nothing listening: one line" "$PONDER" run --remote http://127.0.0.1:9 -p hi
grep -q "cannot reach http://127.0.0.1:9" "$tmp/err" && echo "ok: it says it cannot reach it" \
    || { echo "FAIL: refused message:"; cat "$tmp/err"; fails=$((fails + 1)); }
expect_exit 1 "a missing key file: one line" \
    "$PONDER" run --remote "$URL" --api-key-file "$tmp/nokey" -p hi
expect_exit 2 "--remote without a prompt source is still a usage error" \
    "$PONDER" run --remote "$URL" -p a -f b

# ---- chat --remote in a terminal ----
if command -v tmux > /dev/null 2>&1; then
    S=chat
    screen() { $T capture-pane -p -t $S; }
    wait_for() {
        i=0; n=$(( ${2:-20} * 10 ))
        while [ $i -lt $n ]; do
            screen | grep -qF -- "$1" && return 0
            sleep 0.1; i=$((i + 1))
        done
        return 1
    }
    check() {
        if wait_for "$2" "$3"; then echo "ok: $1"; else
            echo "FAIL: $1: the screen never showed '$2':"; screen | sed 's/^/  | /'
            fails=$((fails + 1)); fi
    }
    $T new-session -d -s $S -x 100 -y 30 \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state \
         XDG_CONFIG_HOME=$tmp/config $PONDER chat --remote $URL --temp 0 --db $tmp/chat.db; \
         echo EXITED rc=\$?; sleep 60"
    check "chat --remote loads the remote model" "ponder-demo"
    $T send-keys -t $S "$Q" Enter
    check "the reply streams" "47 + 38 = 85"
    check "its reasoning is folded" "▸ Thought for"
    check "the status line has the server's context" "/$CTX · "
    $T send-keys -t $S C-d
    check "chat exits" "EXITED rc=0" 10
    "$PONDER" history --db "$tmp/chat.db" show 1 > "$tmp/show" 2>&1
    grep -qF "ponder-demo@$HOSTPORT" "$tmp/show" && grep -qF '47 + 38 = 85' "$tmp/show" \
        && echo "ok: the chat reply is stored under ponder-demo@$HOSTPORT" \
        || { echo "FAIL: chat history:"; sed 's/^/  /' "$tmp/show" | head; fails=$((fails + 1)); }
else
    echo "skipped: tmux is not installed (chat --remote)"
fi
printf '%s\n' "$Q" | "$PONDER" chat --remote "$URL" --temp 0 --no-history \
    > "$tmp/out" 2> "$tmp/err"
grep -qF '47 + 38 = 85' "$tmp/out" && echo "ok: chat --remote in line mode" \
    || { echo "FAIL: line-mode chat --remote:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }

# ---- against a fake server: what other servers do ----
if command -v node > /dev/null 2>&1; then
    node tests/remote_fake.mjs "$tmp/port" 2> "$tmp/fake.log" &
    pids="$pids $!"
    i=0
    while [ $i -lt 100 ] && [ ! -s "$tmp/port" ]; do sleep 0.1; i=$((i + 1)); done
    F="http://127.0.0.1:$(cat "$tmp/port")"
    "$PONDER" run --remote "$F" -m think-tags -p hi --max-tokens 50 --seed 7 \
        > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Five." ] && grep -q 'I add two and three.' "$tmp/err" \
        && ! grep -q 'think>' "$tmp/out" "$tmp/err" \
        && echo "ok: <think> inside content is split (CRLF, keep-alives, split writes)" \
        || { echo "FAIL: think-tags (exit $rc):"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
    grep '"think-tags"' "$tmp/fake.log" | grep -q '"max_tokens":50' \
        && grep '"think-tags"' "$tmp/fake.log" | grep -q '"seed":7' \
        && grep '"think-tags"' "$tmp/fake.log" | grep -q '"stream":true' \
        && echo "ok: the request carries stream, max_tokens and seed" \
        || { echo "FAIL: request body:"; cat "$tmp/fake.log"; fails=$((fails + 1)); }
    expect_exit 1 "HTTP 401: one line" "$PONDER" run --remote "$F" -m needs-key -p hi
    grep -q 'HTTP 401.*Invalid API key.*--api-key-file' "$tmp/err" && echo "ok: it says why" \
        || { echo "FAIL: 401 message:"; cat "$tmp/err"; fails=$((fails + 1)); }
    printf 'sk-test\n' > "$tmp/key"
    "$PONDER" run --remote "$F" -m needs-key --api-key-file "$tmp/key" -p hi > "$tmp/out" 2>&1 \
        && grep -q 'Five.' "$tmp/out" && echo "ok: --api-key-file sends the key" \
        || { echo "FAIL: with the key:"; cat "$tmp/out"; fails=$((fails + 1)); }
    expect_exit 1 "HTTP 500: one line" "$PONDER" run --remote "$F" -m broken -p hi
    grep -q 'HTTP 500 from the server: upstream exploded' "$tmp/err" && echo "ok: with its body" \
        || { echo "FAIL: 500 message:"; cat "$tmp/err"; fails=$((fails + 1)); }
    # vLLM / SGLang without a reasoning parser: the reasoning before a lone </think>
    "$PONDER" run --remote "$F" -m lone-close -p hi --db "$tmp/lone.db" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Five." ] \
        && grep -q 'Okay, so I add two and three.' "$tmp/err" \
        && ! grep -q 'think>' "$tmp/out" "$tmp/err" \
        && echo "ok: content before a lone </think> is the reasoning (stderr), the rest the answer" \
        || { echo "FAIL: lone-close (exit $rc):"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
    "$PONDER" history --db "$tmp/lone.db" export 1 --format json > "$tmp/export" 2>&1
    grep -q '"reasoning": "Okay, so I add two and three.\\n"' "$tmp/export" \
        && grep -q '"answer": "\\n\\nFive."' "$tmp/export" \
        && grep -q '"reasoning_tokens": 3' "$tmp/export" \
        && echo "ok: the store keeps them apart, with the reasoning tokens counted here" \
        || { echo "FAIL: lone-close history:"; cat "$tmp/export"; fails=$((fails + 1)); }
    "$PONDER" run --remote "$F" -m plain -p hi --db "$tmp/plain.db" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello there." ] && ! grep -q Hello "$tmp/err" \
        && echo "ok: a reply without </think> is all answer" \
        || { echo "FAIL: plain (exit $rc):"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
    printf 'hi\nagain\n' | "$PONDER" chat --remote "$F" -m lone-close --no-history \
        > "$tmp/out" 2> "$tmp/err"
    [ "$(grep -c 'Five\.' "$tmp/out")" -eq 2 ] && ! grep -q 'think>' "$tmp/out" "$tmp/err" \
        && echo "ok: chat: two replies, each with its reasoning apart from its answer" \
        || { echo "FAIL: lone-close chat:"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
    "$PONDER" run --remote "$F" -m cutoff -p hi > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 1 ] && grep -q 'Half an ans' "$tmp/out" && [ "$(wc -l < "$tmp/err")" -eq 1 ] \
        && grep -q 'closed the stream before the reply ended' "$tmp/err" \
        && echo "ok: a dropped connection keeps the text and says so" \
        || { echo "FAIL: cutoff (exit $rc):"; cat "$tmp/out" "$tmp/err"; fails=$((fails + 1)); }
else
    echo "skipped: node is not installed (the fake server)"
fi
finish
