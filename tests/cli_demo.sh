#!/bin/sh
# The demo model (issue #6): the committed share/models/ponder-demo.gguf (Q8_0)
# and tests/data/ponder-demo-f32.gguf
# against the committed PyTorch outputs of tools/train_demo.py (CI has no
# torch and does not train).  Teacher-forced logits of the F32 file within
# 1e-3, held-out accuracy of `ponder run --temp 0` >= 80 % and within 1 point
# of PyTorch's, every reply reasons first and its answer has no think tags.
. tests/lib_cli.sh
M=${DEMO_MODEL:-share/models/ponder-demo.gguf}
D=${DEMO_DATA:-tests/data}
MF=${DEMO_MODEL_F32:-$D/ponder-demo-f32.gguf}
tab=$(printf '\t')

# the tokenizer loads the demo vocabulary: <｜User｜> is id 1025, digits one by one
got=$("$PONDER" tokenize -m "$M" "<｜User｜>12+7=?" 2>"$tmp/err")
[ "$got" = "1025 16 17 10 22 28 30" ] && echo "ok: demo tokenizer" \
    || { echo "FAIL: demo tokenizer: '$got'"; cat "$tmp/err"; fails=$((fails + 1)); }

# the training script's Python BPE and ponder's tokenizer agree on held-out texts
out=$("$PONDER" tokenize -m "$M" --cases "$D/demo_tokenize.jsonl" 2>"$tmp/err")
case "$out" in
    *" passed, 0 failed") echo "ok: demo tokenize --cases: $out" ;;
    *) echo "FAIL: demo tokenize --cases: $out"; head -5 "$tmp/err"; fails=$((fails + 1)) ;;
esac

# teacher-forced logits of the F32 file match PyTorch's within 1e-3
grep -v '^#' "$D/demo_logits.txt" | while read -r name ids; do
    if ! "$PONDER" eval -m "$MF" -t 1 --ids "$ids" --all --top 1 --logits-out "$tmp/$name.bin" \
            > /dev/null 2> "$tmp/err"; then
        echo "FAIL: eval $name"; cat "$tmp/err"; echo x >> "$tmp/logit_fails"; continue
    fi
    od -An -v -t f4 "$tmp/$name.bin" | tr -s ' ' '\n' | grep -v '^$' > "$tmp/$name.txt"
    res=$(awk -v tol=1e-3 'NR == FNR { a[NR - 1] = $1 + 0; n = NR; next }
        { nv = NF - 1; p = $1
          for (j = 0; j < nv; j++) {
              k = p * nv + j
              if (k >= n) { bad = "short logits file"; break }
              d = a[k] - $(j + 2); if (d < 0) d = -d
              if (d > max) max = d
          }
          rows++ }
        END { if (bad != "") print "FAIL", bad
              else printf "%s %d positions, max |diff| %.3g\n", (max <= tol ? "ok" : "FAIL"), rows, max }' \
        "$tmp/$name.txt" "$D/demo_logits_$name.txt")
    case "$res" in
        ok*) echo "ok: demo logits $name within 1e-3: ${res#ok }" ;;
        *) echo "FAIL: demo logits $name: $res"; echo x >> "$tmp/logit_fails" ;;
    esac
done
[ -f "$tmp/logit_fails" ] && fails=$((fails + $(wc -l < "$tmp/logit_fails")))

# held-out questions: greedy answers, reasoning first, answer without tags
torch_acc=$(sed -n 's/^# torch_accuracy_f32 //p' "$D/demo_heldout.tsv")
n=0; right=0; tags=0; noreason=0
while IFS="$tab" read -r q want _rest; do
    case "$q" in "#"*) continue ;; esac
    n=$((n + 1))
    "$PONDER" run -m "$M" -t 1 --temp 0 -n 150 -p "$q" > "$tmp/ans" 2> "$tmp/reason" < /dev/null
    ans=$(tr '\n' ' ' < "$tmp/ans" | sed 's/^ *//; s/ *$//')
    [ "$ans" = "$want" ] && right=$((right + 1))
    grep -q '</\{0,1\}think>' "$tmp/ans" && tags=$((tags + 1))
    [ -s "$tmp/reason" ] || noreason=$((noreason + 1))
done < "$D/demo_heldout.tsv"
pct=$(awk -v r="$right" -v n="$n" 'BEGIN { printf "%.1f", n ? 100 * r / n : 0 }')
tpct=$(awk -v a="$torch_acc" 'BEGIN { printf "%.1f", 100 * a }')
echo "demo held-out accuracy: ponder $right/$n = $pct %, PyTorch $tpct %"
[ "$n" -eq 200 ] || { echo "FAIL: $n held-out questions, expected 200"; fails=$((fails + 1)); }
awk -v p="$pct" 'BEGIN { exit !(p >= 80) }' && echo "ok: demo accuracy >= 80 %" \
    || { echo "FAIL: demo accuracy $pct % < 80 %"; fails=$((fails + 1)); }
awk -v p="$pct" -v t="$tpct" 'BEGIN { d = p - t; if (d < 0) d = -d; exit !(d <= 1.0) }' \
    && echo "ok: demo accuracy within 1 point of PyTorch" \
    || { echo "FAIL: demo accuracy $pct % vs PyTorch $tpct %"; fails=$((fails + 1)); }
[ "$tags" -eq 0 ] && echo "ok: no think tags in any answer" \
    || { echo "FAIL: $tags answers contain think tags"; fails=$((fails + 1)); }
[ "$noreason" -eq 0 ] && echo "ok: every reply reasons first" \
    || { echo "FAIL: $noreason replies without reasoning"; fails=$((fails + 1)); }

# --reasoning hide prints only the answer: the same stdout, nothing on stderr
q=$(grep -v '^#' "$D/demo_heldout.tsv" | head -1 | cut -f1)
"$PONDER" run -m "$M" -t 1 --temp 0 -n 150 -p "$q" > "$tmp/want" 2> /dev/null < /dev/null
"$PONDER" run -m "$M" -t 1 --temp 0 -n 150 --reasoning hide -p "$q" > "$tmp/got" 2> "$tmp/err" < /dev/null
got=$(cat "$tmp/got")
[ -s "$tmp/got" ] && cmp -s "$tmp/got" "$tmp/want" && [ ! -s "$tmp/err" ] && echo "ok: --reasoning hide prints only the answer" \
    || { echo "FAIL: --reasoning hide: '$got'"; head -3 "$tmp/err"; fails=$((fails + 1)); }
finish
