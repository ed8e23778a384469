#!/bin/sh
# The chat interface in a real terminal: ponder runs inside a detached tmux
# session of a fixed size, driven with send-keys and read with capture-pane.
# Replies come from a script of engine events (ponder chat --script) so the
# screen's content is exact; cli_tui_engine.sh runs the real engine.
. tests/lib_cli.sh
if ! command -v tmux > /dev/null 2>&1; then
    echo "skipped: tmux is not installed"; exit 0
fi
T="tmux -L ponder-tui-$$"
S=chat
if ! "$PONDER" chat --help > /dev/null 2>&1; then
    echo "FAIL: $PONDER has no chat command"; exit 1
fi
trap '$T kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data" "$tmp/state" "$tmp/config"

cat > "$tmp/script" <<'END'
delay 10
think Let me think\n
think about this.
answer Hello 世界 🙂
answer  world.
end
delay 150
think A long thought
think  goes on
think  and on
think  and on
think  and on
think  and on
answer never reached
end
delay 5
answer 日本語の文章を折り返す
answer テストです。日本語の
answer 文章を折り返すテストです。
answer 😀😀😀😀😀😀😀😀😀😀 done
end
END

screen() { $T capture-pane -p -t $S; }
# wait_for TEXT [SECONDS]: polls the screen until it shows TEXT
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
check_not() {   # check_not DESCRIPTION TEXT
    if screen | grep -qF -- "$2"; then
        echo "FAIL: $1: the screen shows '$2':"; screen | sed 's/^/  | /'
        fails=$((fails + 1)); else echo "ok: $1"; fi
}
# the widest line on the screen, in columns
widest() { screen | LC_ALL=C.UTF-8 wc -L; }
printf '#!/bin/sh\necho "written in the editor" > "$1"\n' > "$tmp/editor"
chmod +x "$tmp/editor"
start() {
    $T new-session -d -s $S -x "$1" -y "$2" \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state \
         XDG_CONFIG_HOME=$tmp/config EDITOR=$tmp/editor VISUAL= \
         $PONDER chat --script $tmp/script -m tiny.gguf $3; \
         echo EXITED rc=\$?; stty -a | grep -q ' icanon' && echo TTY-SANE; sleep 60"
}

start 100 30 ""
check "the model loads" "loaded tiny"
[ "$fails" -eq 0 ] || finish     # nothing else can pass
check "the status line names the model" "tiny · Q8_0"
$T send-keys -t $S 'hello there' Enter
check "the reply streams" "Hello 世界 🙂 world."
check "the reasoning folds once the answer starts" "▸ Thought for"
check_not "folded reasoning is hidden" "about this."
check "timings after the reply" "first token"
$T send-keys -t $S C-o
check "Ctrl-O unfolds the reasoning" "about this."
check "the unfolded header" "▾ Thought for"
$T send-keys -t $S C-o
sleep 0.3
check_not "Ctrl-O folds it again" "about this."

$T send-keys -t $S 'second' Enter
check "thinking shows live" "Thinking…" 5
check "the trace streams" "goes on" 5
$T send-keys -t $S C-c
check "Ctrl-C stops the reply" "interrupted" 5
check "and keeps the partial reply" "goes on"
check_not "the rest never comes" "never reached"
check "the program is alive and ready" "· ready"
$T send-keys -t $S C-c
check "Ctrl-C on an empty line says how to quit" "to quit: Ctrl-D"

$T send-keys -t $S F1
check "F1 shows the keys" "Keys · Up/Down, PgUp/PgDn scroll"
check "the help lists the thinking budget key" "Ctrl-B"
$T send-keys -t $S NPage
check "PgDn scrolls the help to the commands" "/set budget"
check "down to the last one" "/quit"
$T send-keys -t $S Escape
sleep 0.3
check_not "Esc closes the help" "Keys ·"

$T send-keys -t $S 'wide' Enter
check "a CJK and emoji reply" "done" 5
$T resize-window -t $S -x 40 -y 12
sleep 0.5
w=$(widest)
if [ "$w" -le 40 ]; then echo "ok: at 40x12 no line is wider than 40 ($w)"; else
    echo "FAIL: at 40x12 a line is $w columns wide"; screen | sed 's/^/  | /'; fails=$((fails + 1)); fi
check "at 40x12 the status line stays" "tiny ·"
$T send-keys -t $S PPage
check "PgUp scrolls back" "↓"
$T send-keys -t $S NPage
sleep 0.3
if screen | grep -qF "↓"; then echo "FAIL: PgDn did not return to the end"; fails=$((fails + 1)); else
    echo "ok: PgDn returns to the end"; fi
$T resize-window -t $S -x 120 -y 40
sleep 0.5
check "back at 120x40 the transcript is whole" "Hello 世界 🙂 world."
check "the wide reply laid out again" "😀😀😀😀😀😀😀😀😀😀 done"
w=$(widest)
[ "$w" -le 120 ] || { echo "FAIL: a line is $w columns wide at 120"; fails=$((fails + 1)); }


$T send-keys -t $S 'line one' M-Enter 'line two'
check "Alt-Enter starts a new line in the message" "  line two"
$T send-keys -t $S C-u C-u
$T set-buffer -b p "$(printf 'pasted one\npasted two')"
$T paste-buffer -p -b p -t $S
check "a bracketed paste keeps its newlines" "  pasted two"
sleep 0.3
if [ "$(screen | grep -c pasted)" -eq 2 ] && ! screen | grep -q '^pasted'; then
    echo "ok: and is not sent"; else echo "FAIL: the paste was sent"; fails=$((fails + 1)); fi
$T send-keys -t $S C-u C-u C-x C-e
check "Ctrl-X Ctrl-E edits the message in \$EDITOR" "› written in the editor"
$T send-keys -t $S C-u
$T send-keys -t $S 'an unsent line'
$T send-keys -t $S C-d
sleep 0.3
check_not "Ctrl-D with text does not quit" "EXITED"
$T send-keys -t $S C-u C-d
check "Ctrl-D on an empty line quits with 0" "EXITED rc=0"
$T kill-session -t $S

# NO_COLOR: no colour, thinking and answer still told apart by attributes
$T new-session -d -s $S -x 100 -y 30 \
    "env NO_COLOR=1 LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state \
     $PONDER chat --script $tmp/script -m tiny.gguf --no-history --no-fold; echo EXITED rc=\$?; sleep 60"
check "NO_COLOR: it starts" "loaded tiny"
$T send-keys -t $S 'hello' Enter
check "NO_COLOR: the reply streams" "world."
if $T capture-pane -p -e -t $S | grep -q "$(printf '\033')\[[0-9;]*3[0-7]m"; then
    echo "FAIL: NO_COLOR: colour codes on the screen"; fails=$((fails + 1)); else echo "ok: NO_COLOR: no colour"; fi
check "--no-fold keeps the reasoning open" "about this."
$T kill-session -t $S

# -c continues the last conversation; F3 lists, searches and reopens
start 100 30 "-c"
check "-c shows the last conversation" "hello there"
check "with its replies" "Hello 世界 🙂 world."
check "their folded reasoning and timings" "(2 tokens)"
$T send-keys -t $S Up
check "Up recalls the input history of the last run" "› wide"
$T send-keys -t $S C-u
$T send-keys -t $S F3
check "F3 lists past conversations" "History"
check "the conversation is listed" "hello there"
$T send-keys -t $S 'world'
check "searching finds it" "search: world"
$T send-keys -t $S DC
check "Del deletes it" "nothing found"
$T send-keys -t $S C-u
check "Ctrl-U undoes the delete" "hello there"
$T send-keys -t $S Enter
check "Enter reopens it" "continuing this conversation"
$T send-keys -t $S '/quit' Enter
check "/quit quits" "EXITED rc=0"
check "the terminal is restored" "TTY-SANE"
$T kill-session -t $S

# a signal restores the terminal
start 100 30 "--no-history"
check "started again" "loaded tiny"
pid=$($T list-panes -t $S -F '#{pane_pid}')
kill -TERM "$(pgrep -P "$pid" -f 'chat --script' | head -n 1)"
check "SIGTERM ends it" "EXITED rc=143"
check "and restores the terminal" "TTY-SANE"
finish
