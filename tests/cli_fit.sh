#!/bin/sh
# ponder fit and ponder models (#9): the JSON table has every R1 model at
# every quantization, with file sizes within 3 % of the published files (and
# of genmodel's files in bench-models/ when they are there), a model on disk
# is marked, --check measures a file and keeps the measurement, and
# ponder models lists the demo model and the files found.
. tests/lib_cli.sh

export XDG_DATA_HOME="$tmp/xdg" HOME="$tmp" XDG_CONFIG_HOME="$tmp/cfg"
mkdir -p "$XDG_DATA_HOME/ponder/models"
DB="$tmp/ponder.db"
B15=bench-models/r1-qwen-1.5b
if [ -f "$B15-q8_0.gguf" ]; then
    ln -s "$PWD/$B15-q8_0.gguf" "$XDG_DATA_HOME/ponder/models/r1-qwen-1.5b-q8_0.gguf"
fi

expect_exit 2 "fit rejects arguments" "$PONDER" fit extra
expect_exit 2 "fit rejects a bad --ctx" "$PONDER" fit --ctx lots
expect_exit 2 "models rejects arguments" "$PONDER" models extra
expect_exit 1 "fit --check of a missing file is an error" "$PONDER" fit --db "$DB" \
    --check "$tmp/none.gguf" -p 4 -n 2

expect_exit 0 "fit --json" "$PONDER" fit --json --ctx 4096 --db "$DB" && cp "$tmp/out" "$tmp/fit.json"
expect_exit 0 "fit prints a table" "$PONDER" fit --ctx 4096 --db "$DB" && cp "$tmp/out" "$tmp/fit.txt"
for want in "R1-Distill-Qwen-1.5B" "DeepSeek-R1-671B" "IQ1_S" "memory read" "WHERE"; do
    if grep -q -- "$want" "$tmp/fit.txt"; then echo "ok: the table shows $want"; else
        echo "FAIL: no '$want' in the table"; fails=$((fails + 1)); fi
done

# sizes in GB (1e9) of the files llama-quantize makes (the issue's figures)
cat > "$tmp/check.mjs" <<'EOF'
import fs from 'node:fs';
const t = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const bench = JSON.parse(process.argv[3] || '{}');
let bad = 0;
const fail = (m) => { console.log('FAIL: ' + m); bad++; };
const ok = (m) => console.log('ok: ' + m);
const dense = ['Q2_K', 'Q3_K_M', 'Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'F16'];
const want = {
  'R1-Distill-Qwen-1.5B': dense, 'R1-Distill-Qwen-7B': dense, 'R1-Distill-Qwen-14B': dense,
  'R1-Distill-Qwen-32B': dense, 'R1-Distill-Llama-8B': dense, 'R1-Distill-Llama-70B': dense,
  'DeepSeek-R1-671B': ['IQ1_S', 'IQ2_XXS', ...dense],
};
const row = (m, q) => t.models.find((r) => r.model === m && r.quant === q);
for (const [m, qs] of Object.entries(want))
  for (const q of qs) if (!row(m, q)) fail(`${m} ${q} missing`);
if (t.models.length === Object.values(want).reduce((n, q) => n + q.length, 0))
  ok(`${t.models.length} rows: every model and quantization`);
else fail(`${t.models.length} rows`);
const near = (m, q, gb, what) => {
  const r = row(m, q);
  if (!r) return;
  const e = Math.abs(r.file_bytes / 1e9 - gb) / gb;
  if (e <= 0.03) ok(`${m} ${q}: ${(r.file_bytes / 1e9).toFixed(2)} GB, ${what} ${gb} GB`);
  else fail(`${m} ${q}: ${(r.file_bytes / 1e9).toFixed(3)} GB, ${what} ${gb} GB (${(e * 100).toFixed(1)} %)`);
};
near('R1-Distill-Qwen-1.5B', 'Q8_0', 1.89, 'published');
near('R1-Distill-Qwen-1.5B', 'Q4_K_M', 1.12, 'published');
near('R1-Distill-Qwen-1.5B', 'F16', 3.56, 'published');
near('DeepSeek-R1-671B', 'Q4_K_M', 404, 'published');
for (const [q, bytes] of Object.entries(bench)) near('R1-Distill-Qwen-1.5B', q, bytes / 1e9, 'genmodel');
for (const r of t.models) {
  if (!(r.mem_bytes > r.file_bytes * 0.9)) fail(`${r.model} ${r.quant}: memory ${r.mem_bytes} below the file`);
  if (r.fits && !(r.tg_tps > 0 && r.pp_tps > 0)) fail(`${r.model} ${r.quant}: fits but no speed`);
  if (!r.fits && (r.where !== 'does not fit' || r.tg_tps !== 0)) fail(`${r.model} ${r.quant}: ${r.where}`);
}
const small = row('R1-Distill-Qwen-1.5B', 'Q4_K_M'), big = row('R1-Distill-Qwen-1.5B', 'F16');
if (small && big && small.tg_tps > big.tg_tps) ok('fewer bytes per token, faster generation');
else fail('Q4_K_M is not predicted faster than F16');
if (row('DeepSeek-R1-671B', 'F16').fits) fail('the 671B at F16 fits here?');
else ok('the 671B at F16 does not fit');
if (!(t.machine.membw_gbs > 0)) fail('no measured bandwidth');
const kv = row('R1-Distill-Qwen-1.5B', 'Q8_0').kv_bytes_per_token;
if (kv === 28 * 2 * 2 * 128 * 2) ok('1.5B KV cache: 28 KiB per token'); else fail(`1.5B KV per token ${kv}`);
if (process.argv[4]) {
  const d = row('R1-Distill-Qwen-1.5B', 'Q8_0');
  if (d.on_disk) ok('the Q8_0 file on disk is marked'); else fail('the Q8_0 file on disk is not marked');
  if (row('R1-Distill-Qwen-1.5B', 'F16').on_disk) fail('F16 marked on disk');
}
process.exit(bad ? 1 : 0);
EOF
bench='{}'
if [ -f "$B15-q8_0.gguf" ]; then
    bench="{"
    for q in q8_0 q4_k_m f16; do
        [ -f "$B15-$q.gguf" ] && bench="$bench\"$(echo $q | tr a-z A-Z)\": $(wc -c < "$B15-$q.gguf"),"
    done
    bench="${bench%,}}"
    ondisk=1
else
    echo "note: no bench-models/ files (make them with tools/bench.sh): genmodel sizes not compared"
    ondisk=
fi
if node "$tmp/check.mjs" "$tmp/fit.json" "$bench" "$ondisk"; then :; else fails=$((fails + 1)); fi

# --check on a small model: predicted against measured, kept in the store
M="$tmp/xdg/ponder/models/tq-q8_0.gguf"
cp "$TD/models/tq-q8_0.gguf" "$M"
expect_exit 0 "fit --check measures a file" "$PONDER" fit --check "$M" --db "$DB" -p 16 -n 8 --json
if node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
if (!(r.tg_measured > 0 && r.pp_measured > 0 && r.tg_predicted > 0)) process.exit(1);
' "$tmp/out"; then echo "ok: --check prints predicted and measured"; else
    echo "FAIL: --check output:"; head -20 "$tmp/out"; fails=$((fails + 1)); fi
expect_exit 0 "fit --check text" "$PONDER" fit --check "$M" --db "$DB" -p 16 -n 8 --no-record
if grep -q '^tg8 ' "$tmp/out" && grep -q PREDICTED "$tmp/out"; then echo "ok: --check table"; else
    echo "FAIL: --check text:"; cat "$tmp/out"; fails=$((fails + 1)); fi

expect_exit 0 "models --json" "$PONDER" models --json --db "$DB"
if node -e '
const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const demo = a.find((r) => r.demo);
const tq = a.find((r) => r.file === "tq-q8_0.gguf");
if (!demo || !demo.arch || !(demo.params > 0) || !(demo.size_bytes > 0) || !demo.where) process.exit(1);
if (!tq || !tq.measured || !(tq.tg_tps > 0)) process.exit(2);
' "$tmp/out"; then echo "ok: models lists the demo model, and the measured file as measured"; else
    echo "FAIL: models --json:"; head -40 "$tmp/out"; fails=$((fails + 1)); fi
expect_exit 0 "models text" "$PONDER" models --db "$DB"
if grep -q 'ponder-demo.gguf' "$tmp/out" && grep -q 'KV/TOKEN' "$tmp/out"; then echo "ok: models table"; else
    echo "FAIL: models text:"; cat "$tmp/out"; fails=$((fails + 1)); fi
finish
