#!/bin/sh
# ponder devices, and the backend options of the model commands: the list
# of Vulkan devices (lavapipe here), --backend vulkan on eval giving the CPU's
# top token, usage errors, and a clear error for a device that is not there.
# Skips the device checks with a message when there is no Vulkan device.
. tests/lib_cli.sh

expect_exit 2 "devices rejects arguments" "$PONDER" devices extra
expect_exit 2 "--backend wants auto, cpu or vulkan" "$PONDER" eval -m "$TD/models/tq-f32.gguf" \
    --ids "1 2" --backend gpu

if ! "$PONDER" devices > "$tmp/devs" 2>&1; then
    echo "skipped: no Vulkan device ($(cat "$tmp/devs"))"
    finish
fi
if grep -q '^\*0: ' "$tmp/devs" && grep -q 'storage buffer range' "$tmp/devs" && grep -q 'subgroup' "$tmp/devs"; then
    echo "ok: devices lists the default device with its limits"
else
    echo "FAIL: devices output:"; sed 's/^/  /' "$tmp/devs"; fails=$((fails + 1))
fi

M="$TD/models/tq-q8_0.gguf"
expect_exit 0 "eval on the CPU" "$PONDER" eval -m "$M" --ids "1 451 54 12" --top 1 --backend cpu
cpu=$(awk '{print $3}' "$tmp/out")
expect_exit 0 "eval on the device" "$PONDER" eval -m "$M" --ids "1 451 54 12" --top 1 --backend vulkan -v
gpu=$(awk '{print $3}' "$tmp/out")
if [ -n "$cpu" ] && [ "$cpu" = "$gpu" ]; then echo "ok: same top token ($cpu)"; else
    echo "FAIL: top token cpu '$cpu', vulkan '$gpu'"; fails=$((fails + 1)); fi
if grep -q 'layers on vulkan' "$tmp/err"; then echo "ok: -v prints the plan"; else
    echo "FAIL: -v plan:"; sed 's/^/  /' "$tmp/err"; fails=$((fails + 1)); fi
expect_exit 0 "--ngl 1 splits the layers" "$PONDER" eval -m "$M" --ids "1 451 54 12" --top 1 \
    --backend vulkan --ngl 1
split=$(awk '{print $3}' "$tmp/out")
if [ "$split" = "$cpu" ]; then echo "ok: split gives the same top token"; else
    echo "FAIL: split top token '$split', cpu '$cpu'"; fails=$((fails + 1)); fi
expect_exit 1 "a missing device is a clear error" "$PONDER" eval -m "$M" --ids "1 2" \
    --backend vulkan --device 42
finish
