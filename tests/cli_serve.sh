#!/bin/sh
# ponder serve: option checks, the openai-client tests (tests/node/*.test.mjs)
# against servers on free ports, the load test (tests/node/load.mjs) and a
# short standalone run of the request-parser fuzzer when it is built.
# Skips (exit 0, with a message) only when node or tests/node/node_modules is
# missing: run 'make deps'.
. tests/lib_cli.sh

if ! command -v node > /dev/null 2>&1 || [ ! -d tests/node/node_modules/openai ]; then
    echo "skip: node or tests/node/node_modules is missing (run 'make deps')"
    exit 0
fi

# --- options ---
expect_exit 2 "serve refuses a non-loopback --host without a key" \
    "$PONDER" serve --host 0.0.0.0 --db "$tmp/x.db"
expect_exit 2 "serve rejects a bad port" "$PONDER" serve --port 70000
: > "$tmp/empty.key"
expect_exit 1 "serve refuses an empty key file" \
    "$PONDER" serve --api-key-file "$tmp/empty.key" --db "$tmp/x.db"

pids=""
stop_servers() {
    for p in $pids; do kill "$p" 2> /dev/null; done
}
trap 'stop_servers; rm -rf "$tmp"' EXIT

# start_server NAME ARGS...: starts ponder serve on a free port; URL and PID.
start_server() {
    name=$1; shift
    "$PONDER" serve --port 0 "$@" > "$tmp/$name.log" 2>&1 &
    PID=$!
    pids="$pids $PID"
    URL=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on http:[^ ]*:\([0-9][0-9]*\) .*/\1/p' "$tmp/$name.log")
        if [ -n "$port" ]; then
            URL="http://127.0.0.1:$port"
            [ "$name" = loading ] && return 0
            curl -s "$URL/health" 2> /dev/null | grep -q '"ok"' && return 0
        fi
        sleep 0.1
    done
    echo "FAIL: the $name server did not start:"; sed 's/^/  /' "$tmp/$name.log"
    fails=$((fails + 1))
    return 1
}

printf 'sk-test-%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" > "$tmp/key"
mkfifo "$tmp/slow.gguf"
start_server main --ctx 2048 --db "$tmp/serve.db" -v || finish
MAIN_PID=$PID; MAIN_URL=$URL
start_server key --ctx 2048 --api-key-file "$tmp/key" --queue 0 --db "$tmp/key.db" || finish
KEY_URL=$URL
start_server loading -m "$tmp/slow.gguf" --db "$tmp/loading.db" || finish
LOADING_PID=$PID; LOADING_URL=$URL

# --- the openai client ---
if SERVE_URL=$MAIN_URL SERVE_DB="$tmp/serve.db" PONDER="$PONDER" KEY_URL=$KEY_URL \
    KEY_VALUE=$(cat "$tmp/key") LOADING_URL=$LOADING_URL \
    timeout 90 node --test tests/node/serve.test.mjs > "$tmp/node.out" 2>&1; then
    grep -E '^# (tests|pass|fail)' "$tmp/node.out"
    echo "ok: the openai client tests"
else
    grep -vE '^ +(at |\.\.\.)' "$tmp/node.out" | tail -60
    echo "FAIL: the openai client tests"; fails=$((fails + 1))
fi

# the loading server fails cleanly once its "model" turns out to be a FIFO
timeout 5 sh -c ": > '$tmp/slow.gguf'"
wait "$LOADING_PID"; rc=$?
if [ "$rc" -eq 1 ] && grep -q "^ponder: " "$tmp/loading.log"; then
    echo "ok: a model that fails to load ends serve with exit 1"
else
    echo "FAIL: the loading server: exit $rc"; sed 's/^/  /' "$tmp/loading.log"; fails=$((fails + 1))
fi

# --- load: a fresh server and store, so every run stored is counted ---
start_server load --db "$tmp/load.db" --queue 16 --max-connections 64 || finish
LOAD_PID=$PID
if SERVE_URL=$URL SERVER_PID=$LOAD_PID PONDER="$PONDER" SERVE_DB="$tmp/load.db" \
    timeout 90 node tests/node/load.mjs; then
    echo "ok: the load test"
else
    echo "FAIL: the load test"; fails=$((fails + 1))
fi

# --- a clean stop on SIGTERM ---
for p in "$MAIN_PID" "$LOAD_PID"; do
    kill -TERM "$p"
    wait "$p"; rc=$?
    if [ "$rc" -eq 0 ]; then echo "ok: serve stops cleanly on SIGTERM"
    else echo "FAIL: serve exited $rc on SIGTERM"; fails=$((fails + 1)); fi
done

# --- no sanitizer report in any server's log (a SAN=1 build) ---
for l in "$tmp"/*.log; do
    if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|WARNING: ThreadSanitizer\|runtime error:" "$l"; then
        echo "FAIL: a sanitizer report in $(basename "$l"):"; grep -A20 "ERROR\|runtime error" "$l" | head -40
        fails=$((fails + 1))
    fi
done

# --- the request parser under a seeded fuzz corpus (when built) ---
: "${BUILD:=build}"
if [ -x "$BUILD/tools/fuzz_serve" ]; then
    if "$BUILD/tools/fuzz_serve" -n 20000 > "$tmp/fuzz.out" 2>&1; then
        echo "ok: $(tail -n 1 "$tmp/fuzz.out")"
    else
        echo "FAIL: fuzz_serve"; tail -5 "$tmp/fuzz.out"; fails=$((fails + 1))
    fi
else
    echo "note: $BUILD/tools/fuzz_serve is not built; the fuzz run is skipped"
fi
finish
