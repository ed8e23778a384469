#!/bin/sh
# genmodel (tools/genmodel.c): models of every type load and run in ponder,
# the k-quant mixes give the tensor sizes llama-quantize gives the test
# models, a seed fixes the bytes, bad options exit 2, write failures exit 1
# and leave no file.
. tests/lib_cli.sh
G=${BUILD:-build}/tools/genmodel

gm_exit() {  # gm_exit CODE DESCRIPTION ARGS...: one "genmodel: " line on failure
    want=$1; what=$2; shift 2
    "$G" "$@" > "$tmp/out" 2> "$tmp/err" < /dev/null
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  stderr: /' "$tmp/err" | head -3
        fails=$((fails + 1)); return 1
    fi
    if [ "$want" -ne 0 ] && { [ "$(wc -l < "$tmp/err")" -ne 1 ] || ! grep -q '^genmodel: ' "$tmp/err"; }; then
        echo "FAIL: $what: expected one 'genmodel: ' line"; fails=$((fails + 1)); return 1
    fi
    echo "ok: $what"
}

for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_m q5_k_m q6_k; do
    gm_exit 0 "tiny-qwen $t" --preset tiny-qwen --type "$t" -q -o "$tmp/$t.gguf" || continue
    # same tensors as llama-quantize's file: sizes differ only by metadata text
    a=$(wc -c < "$tmp/$t.gguf"); b=$(wc -c < "$TD/models/tq-$t.gguf")
    d=$((a - b)); [ "$d" -lt 0 ] && d=$((-d))
    [ "$d" -le 64 ] || { echo "FAIL: $t: $a bytes, tq-$t.gguf has $b"; fails=$((fails + 1)); }
    if ! "$PONDER" eval -m "$tmp/$t.gguf" --ids "1 2 3" > "$tmp/eval" 2>&1 || grep -qiE 'nan|inf' "$tmp/eval"; then
        echo "FAIL: ponder eval on tiny-qwen $t"; sed 's/^/  /' "$tmp/eval" | head -3; fails=$((fails + 1))
    fi
    rm -f "$tmp/$t.gguf"
done
gm_exit 0 "tiny-llama q4_k_m" --preset tiny-llama --type q4_k_m -q -o "$tmp/l.gguf" &&
    "$PONDER" eval -m "$tmp/l.gguf" --ids "1 2 3" > /dev/null 2>&1 || { echo "FAIL: tiny-llama eval"; fails=$((fails + 1)); }

# deepseek2: the td test models' shape gives their sizes; every file runs
for t in f32 q8_0 q4_k_m; do
    gm_exit 0 "tiny-deepseek2 $t" --preset tiny-deepseek2 --type "$t" -q -o "$tmp/d$t.gguf" || continue
    if [ -f "$TD/models/td-$t.gguf" ]; then
        a=$(wc -c < "$tmp/d$t.gguf"); b=$(wc -c < "$TD/models/td-$t.gguf")
        d=$((a - b)); [ "$d" -lt 0 ] && d=$((-d))
        [ "$d" -le 64 ] || { echo "FAIL: deepseek2 $t: $a bytes, td-$t.gguf has $b"; fails=$((fails + 1)); }
    fi
    if ! "$PONDER" eval -m "$tmp/d$t.gguf" --ids "0 5 6 7" > "$tmp/eval" 2>&1 || grep -qiE 'nan|inf' "$tmp/eval"; then
        echo "FAIL: ponder eval on tiny-deepseek2 $t"; sed 's/^/  /' "$tmp/eval" | head -3; fails=$((fails + 1))
    fi
    rm -f "$tmp/d$t.gguf"
done
"$PONDER" eval -m "$TD/models/td-lite-f32.gguf" -p "Hello" --top 3 > "$tmp/eval" 2>&1 &&
    [ "$(wc -l < "$tmp/eval")" -ge 3 ] || { echo "FAIL: ponder eval on td-lite-f32"; fails=$((fails + 1)); }
gm_exit 2 "deepseek2 without a preset" --arch deepseek2 --n-embd 64 --n-layer 2 --n-head 2 --n-ff 64 -o "$tmp/x.gguf"

gm_exit 0 "seed 7" --preset tiny-llama --type q4_k_m --seed 7 --threads 1 -q -o "$tmp/s1.gguf"
gm_exit 0 "seed 7 again, 3 threads" --preset tiny-llama --type q4_k_m --seed 7 --threads 3 -q -o "$tmp/s2.gguf"
gm_exit 0 "seed 8" --preset tiny-llama --type q4_k_m --seed 8 -q -o "$tmp/s3.gguf"
cmp -s "$tmp/s1.gguf" "$tmp/s2.gguf" || { echo "FAIL: same seed, different bytes"; fails=$((fails + 1)); }
cmp -s "$tmp/s1.gguf" "$tmp/s3.gguf" && { echo "FAIL: different seeds, same bytes"; fails=$((fails + 1)); }

gm_exit 2 "unknown option" --preset tiny-qwen --frobnicate -o "$tmp/x.gguf"
gm_exit 2 "unknown type" --preset tiny-qwen --type q9_9 -o "$tmp/x.gguf"
gm_exit 2 "unknown preset" --preset gpt-5 -o "$tmp/x.gguf"
gm_exit 2 "no output" --preset tiny-qwen
gm_exit 2 "heads do not divide" --preset tiny-qwen --n-head 3 -o "$tmp/x.gguf"
gm_exit 2 "row not a multiple of 256 for q2_k" --preset tiny-qwen --n-embd 288 --type q2_k -o "$tmp/x.gguf"
gm_exit 2 "vocab smaller than the tokenizer" --preset tiny-qwen --n-vocab 10 -o "$tmp/x.gguf"
gm_exit 1 "missing vocabulary" --preset tiny-qwen --vocab /nonexistent.gguf -o "$tmp/x.gguf"
gm_exit 1 "unwritable directory" --preset tiny-qwen -o /nonexistent/dir/x.gguf
[ -w /dev/full ] && gm_exit 1 "disk full" --preset tiny-qwen -o /dev/full
(ulimit -f 200; trap '' XFSZ; "$G" --preset tiny-qwen --type f32 -o "$tmp/big.gguf" 2> /dev/null)
[ $? -eq 1 ] || { echo "FAIL: file size limit: exit status"; fails=$((fails + 1)); }
[ -z "$(ls "$tmp" | grep big)" ] || { echo "FAIL: a partial file was left"; fails=$((fails + 1)); }
finish
