#!/bin/sh
# Generation and eval through the command line against llama.cpp's references.
. tests/lib_cli.sh

# ponder run --raw --temp 0 prints the 16 reference gen_ids of p1 (issue #2)
for m in tq-q8_0 tq-f32 tl-q4_k_m; do
    want=$(ref_gen_ids "$TD/models/$m.ref.json" 1)
    got=$("$PONDER" run -m "$TD/models/$m.gguf" --raw -p "$(cat "$TD/prompts/p1.txt")" --temp 0 \
          -n 16 --print-ids --kv-type f32 2>"$tmp/err")
    if [ "$got" = "$want" ]; then echo "ok: $m greedy ids"; else
        echo "FAIL: $m greedy ids"; echo "  want: $want"; echo "  got:  $got"; cat "$tmp/err"; fails=$((fails+1)); fi
done

# eval --top 1 of the prompt ids gives the reference's first generated id
want=$(ref_gen_ids "$TD/models/tq-f32.ref.json" 2 | cut -d' ' -f1)
ids=$(grep -o '"prompt_ids": *\[[^]]*\]' "$TD/models/tq-f32.ref.json" | sed -n 2p | sed 's/.*\[//; s/\]//; s/,//g')
got=$("$PONDER" eval -m "$TD/models/tq-f32.gguf" --ids "$ids" --top 1 | cut -d' ' -f3)
[ "$got" = "$want" ] && echo "ok: eval top-1" || { echo "FAIL: eval top-1 $got, want $want"; fails=$((fails+1)); }

# --logits-out writes n_vocab float32 values per printed position
"$PONDER" eval -m "$TD/models/tq-f32.gguf" --ids "$ids" --all --top 2 --logits-out "$tmp/l.bin" > "$tmp/all.txt"
n_ids=$(echo "$ids" | wc -w)
size=$(wc -c < "$tmp/l.bin")
[ "$size" -eq $((n_ids * 455 * 4)) ] && echo "ok: logits-out size" || { echo "FAIL: logits-out size $size"; fails=$((fails+1)); }
[ "$(wc -l < "$tmp/all.txt")" -eq $((n_ids * 2)) ] && echo "ok: --all lines" || { echo "FAIL: --all lines"; fails=$((fails+1)); }
"$PONDER" eval -m "$TD/models/tq-f32.gguf" -p "Hello" --json --top 3 | grep -q '"rank": *2' \
    && echo "ok: eval --json" || { echo "FAIL: eval --json"; fails=$((fails+1)); }

# tokenize --cases over the three vocabularies
for v in r1-qwen r1-llama r1; do
    out=$("$PONDER" tokenize -m "$TD/vocab-$v.gguf" --cases "$TD/tokenizer/$v.jsonl" 2>"$tmp/err")
    case "$out" in
        *" passed, 0 failed") echo "ok: tokenize --cases $v: $out" ;;
        *) echo "FAIL: tokenize --cases $v: $out"; head -5 "$tmp/err"; fails=$((fails+1)) ;;
    esac
done
[ "$("$PONDER" tokenize -m "$TD/vocab-r1-qwen.gguf" '<think>')" = "151648" ] && echo "ok: tokenize <think>" \
    || { echo "FAIL: tokenize <think>"; fails=$((fails+1)); }

# a chat-formatted run streams and stops by itself within -n
"$PONDER" run -m "$TD/models/tq-q4_k_m.gguf" -p "Hi" -n 8 --seed 3 > "$tmp/a.txt" 2>"$tmp/r.txt" \
    && echo "ok: chat run" || { echo "FAIL: chat run"; cat "$tmp/r.txt"; fails=$((fails+1)); }
"$PONDER" run -m "$TD/models/tq-q4_k_m.gguf" -p "Hi" -n 8 --seed 3 > "$tmp/b.txt" 2>/dev/null
cmp -s "$tmp/a.txt" "$tmp/b.txt" && echo "ok: same seed, same reply" || { echo "FAIL: seed not deterministic"; fails=$((fails+1)); }
finish
