#!/bin/sh
# The chat interface end to end on the real engine, in tmux: a reply streams
# from a tiny model of the reference data, the picker (F2) and Ctrl-N switch
# models mid-conversation, the transcript records each switch and which model
# wrote each reply, and the conversation lands in the history store.
. tests/lib_cli.sh
if ! command -v tmux > /dev/null 2>&1; then
    echo "skipped: tmux is not installed"; exit 0
fi
T="tmux -L ponder-tui-engine-$$"
S=chat
if ! "$PONDER" chat --help > /dev/null 2>&1; then
    echo "FAIL: $PONDER has no chat command"; exit 1
fi
trap '$T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data" "$tmp/state"
MQ=$TD/models/tq-q8_0.gguf
ML=$TD/models/tl-q8_0.gguf

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
count() { screen | grep -cF -- "$1"; }

$T new-session -d -s $S -x 120 -y 40 \
    "env LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state \
     $PONDER chat -m $MQ -m $ML -n 12 --seed 7 -t 2; echo EXITED rc=\$?; sleep 60"
check "the first model loads" "loaded ponder-test tiny qwen2"
[ "$fails" -eq 0 ] || finish     # nothing else can pass
$T send-keys -t $S 'hello' Enter
check "a reply streams to its end" "first token"
$T send-keys -t $S F2
check "F2 lists the models" "tl-q8_0.gguf"
$T send-keys -t $S Down
check "the picker says what a switch costs" "switch: load ≈"
check "and that this conversation is read again" "tokens ≈"
$T send-keys -t $S Enter
check "choosing one switches" "switched to"
check "to the llama model" "llama"
check "the cost is said before the switch" "· to tl-q8_0"
check "the real load time after it" "switch: loaded in"
$T send-keys -t $S 'and now?' Enter
check "the next reply gives the real re-read time" "switch: re-read"
i=0
while [ "$(count 'first token')" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(count 'first token')" -ge 2 ]; then echo "ok: the new model replies"; else
    echo "FAIL: no second reply"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
$T send-keys -t $S C-n
i=0
while [ "$(count 'switched to')" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(count 'switched to')" -ge 2 ]; then echo "ok: Ctrl-N switches to the next model"; else
    echo "FAIL: Ctrl-N did not switch"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
$T send-keys -t $S F4
check "F4 shows the speed of each model" "runs  gen"
check "with the llama model's runs" "tiny llama"
$T send-keys -t $S Escape
sleep 0.3
$T send-keys -t $S F2
check "the picker shows architecture and weight type" "qwen2     "
if screen | grep -F 'tl-q8_0.gguf' | grep -qE 'CPU only|full|[0-9]+ of [0-9]+ layers|experts in RAM'; then
    echo "ok: the picker says where each model runs here"; else
    echo "FAIL: no fits column:"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
if screen | grep -F 'tl-q8_0.gguf' | grep -qE '[0-9.]+ t/s'; then
    echo "ok: and its speed"; else
    echo "FAIL: no speed column:"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
$T send-keys -t $S Escape
sleep 0.3
$T send-keys -t $S C-d
check "Ctrl-D quits" "EXITED rc=0"

"$PONDER" history list --db "$tmp/data/ponder/ponder.db" > "$tmp/list" 2>&1
if grep -q hello "$tmp/list" && grep -q ' 4 ' "$tmp/list"; then
    echo "ok: the conversation is in the history store"
else
    echo "FAIL: history list:"; sed 's/^/  /' "$tmp/list"; fails=$((fails + 1))
fi
"$PONDER" history show 1 --db "$tmp/data/ponder/ponder.db" > "$tmp/show" 2>&1
if grep -q 'qwen2' "$tmp/show" && grep -q 'llama' "$tmp/show"; then
    echo "ok: each reply names the model that wrote it"
else
    echo "FAIL: history show:"; sed 's/^/  /' "$tmp/show" | head -30; fails=$((fails + 1))
fi
finish
