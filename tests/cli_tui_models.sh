#!/bin/sh
# Models and the thinking budget in the chat interface, in tmux, with a
# script of engine events for exact content: favourites (Alt-1..9, Ctrl-N/P)
# from the config, a remote model from the config in the picker, the cost of
# a switch before it and the real figures after, the thinking budget key
# (Ctrl-B), /set budget|budget-mode|think and --think-budget at start, the
# folded line saying "budget reached", --fold over fold_reasoning = false,
# and the mouse wheel.
. tests/lib_cli.sh
if ! command -v tmux > /dev/null 2>&1; then
    echo "skipped: tmux is not installed"; exit 0
fi
T="tmux -L ponder-tui-models-$$"
S=models
trap '$T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data" "$tmp/state" "$tmp/config/ponder"

cat > "$tmp/script" <<'END'
delay 10
loadms 300
think one\n
think two\n
think three\n
think four\n
answer First answer.
end
think alpha\n
think beta\n
think gamma\n
answer Second answer.
end
think should not show
answer Third answer.
end
END
cat > "$tmp/config/ponder/config" <<END
favourites = beta, alpha.gguf
remote = big-r1 http://127.0.0.1:9
fold_reasoning = false
END

screen() { $T capture-pane -p -t $S; }
wait_for() {
    i=0; n=$(( ${2:-10} * 10 ))
    while [ $i -lt $n ]; do
        screen | grep -qF -- "$1" && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
check() {   # check DESCRIPTION TEXT [SECONDS]
    if wait_for "$2" "$3"; then echo "ok: $1"; else
        echo "FAIL: $1: the screen never showed '$2':"; screen | sed 's/^/  | /'
        fails=$((fails + 1)); fi
}
check_not() {
    if screen | grep -qF -- "$2"; then
        echo "FAIL: $1: the screen shows '$2':"; screen | sed 's/^/  | /'
        fails=$((fails + 1)); else echo "ok: $1"; fi
}
count() { screen | grep -cF -- "$1"; }
# wait_count TEXT N: polls until TEXT is on N lines or more
wait_count() {
    i=0
    while [ "$(count "$1")" -lt "$2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(count "$1")" -ge "$2" ]
}
start() {
    $T new-session -d -s $S -x 120 -y 40 \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm XDG_DATA_HOME=$tmp/data \
         XDG_STATE_HOME=$tmp/state XDG_CONFIG_HOME=$tmp/config \
         $PONDER chat --script $tmp/script -m gamma.gguf -m alpha.gguf -m beta.gguf $1; \
         echo EXITED rc=\$?; sleep 60"
}

start "--fold --think-budget 3"
check "the first model loads" "loaded gamma"
[ "$fails" -eq 0 ] || finish
check "--think-budget applies at start" "think 3 ·"

# the budget ends the reasoning; the folded line says so; --fold wins over the config
$T send-keys -t $S 'hello' Enter
check "the reply streams" "First answer."
check "the folded line says the budget was reached" "(3 tokens, budget reached)"
check_not "--fold folds although fold_reasoning = false" "four"

# Ctrl-B cycles 3 -> 256 -> 1024 -> 4096 -> unlimited -> off -> 256
$T send-keys -t $S C-b
check "Ctrl-B: the next step up" "think 256 ·"
$T send-keys -t $S C-b
check "Ctrl-B: 1024" "think 1,024 ·"
$T send-keys -t $S C-b
check "Ctrl-B: 4096" "think 4,096 ·"
$T send-keys -t $S C-b
check "Ctrl-B: unlimited" "think ∞ ·"
$T send-keys -t $S C-b
check "Ctrl-B: off" "think off ·"
$T send-keys -t $S C-b
check "Ctrl-B: 256" "think 256 ·"
$T send-keys -t $S '/set budget 2' Enter
check "/set budget N" "think 2 ·"
$T send-keys -t $S '/set budget-mode hard' Enter
check "/set budget-mode hard" "think 2 hard ·"
$T send-keys -t $S 'again' Enter
check "the second reply" "Second answer."
check "ends its reasoning at the budget" "(2 tokens, budget reached)"
$T send-keys -t $S '/set think off' Enter
check "/set think off" "think off ·"
$T send-keys -t $S 'third' Enter
check "the third reply" "Third answer."
check_not "with thinking off there is no reasoning" "should not show"
$T send-keys -t $S '/set budget lots' Enter
check "a bad /set budget says why" "/set budget: a number"

# favourites: Alt-1 is the first favourite (beta), Ctrl-N the next (alpha)
$T send-keys -t $S M-1
check "the cost is said before the switch" "switch: load ≈ 0.0 s, re-read"
check "Alt-1 loads the first favourite" "switched to beta"
check "the real figures after it" "switch: loaded in 0."
$T send-keys -t $S C-n
check "Ctrl-N goes to the next favourite" "switched to alpha"
$T send-keys -t $S C-n
wait_count "switched to beta" 2
check "and wraps to the first" "switched to beta"
$T send-keys -t $S C-p
wait_count "switched to alpha" 2
if [ "$(count 'switched to alpha')" -ge 2 ] && [ "$(count 'switched to gamma')" -eq 0 ]; then
    echo "ok: Ctrl-P goes back, never to a model that is no favourite"; else
    echo "FAIL: Ctrl-P"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
$T send-keys -t $S M-3
check "Alt-3 with two favourites says there is none" "there is no favourite 3"
$T send-keys -t $S '/set think on' Enter
$T send-keys -t $S 'after the switch' Enter
check "the next reply gives the real re-read time" "switch: re-read"

# the picker lists the files and the remote model; choosing the remote loads it
$T send-keys -t $S F2
check "F2 lists the remote model of the config" "big-r1"
$T send-keys -t $S Down
check "the picker says what a switch costs" "switch: load ≈ 0.3 s, re-read"
$T send-keys -t $S Down Down Down Down Enter
check "the remote model loads through the same keys" "switched to big-r1"
check "as a remote model, NAME@HOST" "big-r1@script · remote"

# the mouse wheel scrolls the transcript (xterm's SGR reports: button 64 = wheel up, 65 down)
$T send-keys -t $S -l "$(printf '\033[<64;10;5M')"
check "the wheel scrolls back" "↓ 3 more"
$T send-keys -t $S -l "$(printf '\033[<65;10;5M')"
sleep 0.3
check_not "and down again" "↓ 3 more"
$T send-keys -t $S C-d
check "Ctrl-D quits" "EXITED rc=0"
$T kill-session -t $S

# a conversation reopened from the store still says the budget ended its reasoning
start "-c"
check "-c reopens the conversation" "continuing this conversation"
check "its folded line says the budget was reached" "(3 tokens, budget reached)"
$T send-keys -t $S C-d
check "Ctrl-D quits again" "EXITED rc=0"
$T kill-session -t $S

"$PONDER" history show 1 --db "$tmp/data/ponder/ponder.db" --format json > "$tmp/show" 2>&1 ||
    "$PONDER" history export 1 --db "$tmp/data/ponder/ponder.db" --format json > "$tmp/show" 2>&1
if grep -q '"driver": *"tui"' "$tmp/show"; then echo "ok: the runs record the driver tui"; else
    echo "FAIL: no driver tui in the stored runs:"; head -40 "$tmp/show" | sed 's/^/  /'; fails=$((fails + 1)); fi
finish
