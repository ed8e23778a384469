#!/bin/sh
# The first run (issue #6): with no model configured, `ponder` opens the chat
# on the bundled demo model, says so, answers an arithmetic question with its
# reasoning folded, and the answer is right.
. tests/lib_cli.sh
if ! command -v tmux > /dev/null 2>&1; then
    echo "skipped: tmux is not installed"; exit 0
fi
T="tmux -L ponder-tui-demo-$$"
S=demo
trap '$T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data" "$tmp/state"
# the binary finds the demo model beside itself (build/ or the top of the tree)
[ -f share/models/ponder-demo.gguf ] || { echo "FAIL: share/models/ponder-demo.gguf is missing"; exit 1; }

screen() { $T capture-pane -p -t $S; }
wait_for() {
    i=0; n=$(( ${2:-30} * 10 ))
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
     $PONDER --temp 0; echo EXITED rc=\$?; sleep 60"
check "the demo model opens by itself" "loaded ponder-demo"
check "and says how to add a real model" "~/.local/share/ponder/models"
[ "$fails" -eq 0 ] || finish
$T send-keys -t $S "What is 47 + 38?" Enter
check "the reasoning folds once the answer starts" "▸ Thought for"
check "the answer is right" "47 + 38 = 85"
if screen | grep -v "Thought for" | grep -qF "think>"; then
    echo "FAIL: a think tag is on the screen"; fails=$((fails + 1))
else
    echo "ok: no think tags on the screen"
fi
$T send-keys -t $S C-o
check "Ctrl-O unfolds the working" "▾ Thought for"
check "the working is there" "7+8"
$T send-keys -t $S C-d
check "Ctrl-D quits" "EXITED rc=0"
finish
