#!/bin/sh
# The command-line contract: usage errors exit 2, runtime errors exit 1 with
# one "ponder: ..." line, success exits 0 (DESIGN.md section 4).
. tests/lib_cli.sh
M=$TD/models/tq-q8_0.gguf

expect_exit 0 "--version" "$PONDER" --version
expect_exit 0 "--help" "$PONDER" --help
expect_exit 0 "run --help" "$PONDER" run --help
expect_exit 2 "unknown command" "$PONDER" frobnicate
expect_exit 2 "unknown option" "$PONDER" run --frobnicate
expect_exit 2 "run without a model" "$PONDER" run -p hi
expect_exit 2 "bad --temp" "$PONDER" run -m "$M" -p hi --temp hot
expect_exit 2 "bad --threads" "$PONDER" run -m "$M" -p hi -t 0
expect_exit 2 "option missing its value" "$PONDER" eval -m "$M" --ids
expect_exit 2 "eval without ids or text" "$PONDER" eval -m "$M"
expect_exit 2 "bad --kv-type" "$PONDER" bench -m "$M" --kv-type q4
expect_exit 2 "bench with nothing to do" "$PONDER" bench -m "$M" -p 0 -n 0
expect_exit 1 "missing model file" "$PONDER" run -m /nonexistent/x.gguf -p hi
printf 'not a gguf file at all' > "$tmp/bad.gguf"
expect_exit 1 "malformed model file" "$PONDER" run -m "$tmp/bad.gguf" -p hi
grep -q 'bad.gguf' "$tmp/err" || { echo "FAIL: the error does not name the file"; fails=$((fails+1)); }
# the same file with another architecture name (same length, so every offset holds)
perl -0777 -pe 's/qwen2/mamba/g' "$TD/models/tq-f32.gguf" > "$tmp/mamba.gguf"
expect_exit 1 "unsupported architecture" "$PONDER" run -m "$tmp/mamba.gguf" -p hi
grep -q 'mamba' "$tmp/err" || { echo "FAIL: the error does not name the architecture"; fails=$((fails+1)); }
expect_exit 1 "a vocabulary-only file cannot answer" "$PONDER" run -m "$TD/vocab-r1-qwen.gguf" -p hi
expect_exit 1 "token id out of range" "$PONDER" eval -m "$M" --ids "1 2 99999"
expect_exit 1 "unwritable --logits-out" "$PONDER" eval -m "$M" --ids "1 2" --logits-out /nonexistent/dir/x
# a full disk is a runtime error with one line, not a silent success
if [ -w /dev/full ]; then
    for c in "tokenize -m $M hello" "eval -m $M --ids 1" "run -m $M -p hi -n 2"; do
        # shellcheck disable=SC2086
        "$PONDER" $c > /dev/full 2> "$tmp/err"
        rc=$?
        if [ "$rc" -eq 1 ] && grep -q 'ponder: writing the output' "$tmp/err"; then
            echo "ok: ${c%% *} to a full disk"
        else
            echo "FAIL: ${c%% *} to a full disk: exit $rc"; cat "$tmp/err"; fails=$((fails + 1))
        fi
    done
fi
finish
