#!/bin/sh
# The config file ($XDG_CONFIG_HOME/ponder/config): its settings apply,
# default_model stands in for -m, options override it, and a bad line is one
# warning, never fatal (DESIGN.md section 4).
. tests/lib_cli.sh
M=$TD/models/tq-q8_0.gguf
export XDG_CONFIG_HOME="$tmp/cfg" XDG_DATA_HOME="$tmp/data"
mkdir -p "$XDG_CONFIG_HOME/ponder"
cfg=$XDG_CONFIG_HOME/ponder/config
fail() { echo "FAIL: $1"; fails=$((fails + 1)); }

# temp = 0 in the file makes sampling greedy, so two runs agree.
printf '# greedy\ntemp = 0\n' > "$cfg"
expect_exit 0 "run with temp = 0 from the config" "$PONDER" run -m "$M" -p hi -n 4 --print-ids
cp "$tmp/out" "$tmp/a"
expect_exit 0 "the same run again" "$PONDER" run -m "$M" -p hi -n 4 --print-ids
cmp -s "$tmp/a" "$tmp/out" || fail "temp = 0 from the config is not deterministic"
[ -s "$tmp/a" ] || fail "no ids printed"
[ -s "$tmp/err" ] && fail "a good config printed: $(head -1 "$tmp/err")"
# and it equals --temp 0 given on the command line, with no config
XDG_CONFIG_HOME="$tmp/none" "$PONDER" run -m "$M" -p hi -n 4 --print-ids --temp 0 > "$tmp/b" 2>/dev/null
cmp -s "$tmp/a" "$tmp/b" || fail "temp = 0 in the config differs from --temp 0"

# default_model lets run go without -m; -m still wins over it.
printf 'temp = 0\ndefault_model = "%s"\n' "$M" > "$cfg"
expect_exit 0 "run without -m uses default_model" "$PONDER" run -p hi -n 4 --print-ids
cmp -s "$tmp/a" "$tmp/out" || fail "default_model run differs from -m"
printf 'default_model = /nonexistent/x.gguf\n' > "$cfg"
expect_exit 1 "a missing default_model is a runtime error" "$PONDER" run -p hi -n 4
grep -q 'nonexistent/x.gguf' "$tmp/err" || fail "the error does not name the default_model"
expect_exit 0 "-m overrides default_model" "$PONDER" run -m "$M" -p hi -n 4 --temp 0 --print-ids
cmp -s "$tmp/a" "$tmp/out" || fail "-m did not override default_model"

# a name in model_dirs resolves
mkdir -p "$tmp/models"
cp "$M" "$tmp/models/mine.gguf"
printf 'model_dirs = /nonexistent:%s\ndefault_model = mine\ntemp = 0\n' "$tmp/models" > "$cfg"
expect_exit 0 "default_model found in model_dirs" "$PONDER" run -p hi -n 4 --print-ids
cmp -s "$tmp/a" "$tmp/out" || fail "model_dirs model differs"

# a bad line is one warning naming file, line and key; the rest still applies.
printf 'temp = 0\nthreads = lots\n' > "$cfg"
"$PONDER" run -m "$M" -p hi -n 4 --print-ids > "$tmp/out" 2> "$tmp/err"
rc=$?
[ "$rc" -eq 0 ] || fail "a bad config line is fatal (exit $rc)"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "expected one warning line, got: $(cat "$tmp/err")"
grep -q "config:2:.*threads" "$tmp/err" || fail "the warning does not name line and key: $(cat "$tmp/err")"
cmp -s "$tmp/a" "$tmp/out" || fail "temp = 0 was dropped because of another bad line"
[ "$fails" -eq 0 ] && echo "ok: bad line warns once"

# an unknown key warns; the command line overrides the file.
printf 'colour = blue\n' > "$cfg"
"$PONDER" run -m "$M" -p hi -n 1 --print-ids > /dev/null 2> "$tmp/err" || fail "unknown key is fatal"
grep -q "unknown key 'colour'" "$tmp/err" || fail "no warning for an unknown key"
printf 'temp = 1.5\n' > "$cfg"
expect_exit 0 "--temp overrides the config's temp" "$PONDER" run -m "$M" -p hi -n 4 --temp 0 --print-ids
cmp -s "$tmp/a" "$tmp/out" || fail "--temp 0 did not override temp = 1.5"

# chat (line mode) loads default_model instead of the demo model
printf 'temp = 0\ndefault_model = "%s"\n' "$M" > "$cfg"
echo hi | "$PONDER" chat --no-history -n 3 > "$tmp/c1" 2> "$tmp/err" || fail "chat with default_model failed"
grep -q 'demo model' "$tmp/err" && fail "chat loaded the demo model, not default_model"
echo hi | XDG_CONFIG_HOME="$tmp/none" "$PONDER" chat --no-history -n 3 -m "$M" --temp 0 > "$tmp/c2" 2>/dev/null
cmp -s "$tmp/c1" "$tmp/c2" || fail "chat with default_model differs from chat -m"
finish
