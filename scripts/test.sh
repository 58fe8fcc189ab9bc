#!/usr/bin/env bash
# The test suite: everything under the default provider (webgpu), then the kernel and GPU tests again
# under bun-webgpu. Ends with one line "N passed, N failed" summing both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
log=$(mktemp)
status=0
echo "== bun test (BUNLM_WEBGPU=dawn)"
BUNLM_WEBGPU=dawn bun test --timeout 120000 2>&1 | tee -a "$log" || status=1
# the kernels again under the other binding; the binding-window splits (big_tensor) are the same
# dispatches on either and take a minute of pipeline compiles, so they run once
second=$(ls test/ops/*.test.ts test/tensor/*.test.ts | grep -v 'test/ops/big_tensor.test.ts')
echo "== bun test test/ops test/tensor (BUNLM_WEBGPU=bun)"
# shellcheck disable=SC2086
BUNLM_WEBGPU=bun bun test --timeout 120000 $second 2>&1 | tee -a "$log" || status=1
pass=$(grep -E '^ *[0-9]+ pass$' "$log" | awk '{s+=$1} END {print s+0}')
fail=$(grep -E '^ *[0-9]+ fail$' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
[ "$pass" -gt 0 ] || status=1
[ "$fail" -eq 0 ] || status=1
echo "$pass passed, $fail failed"
exit $status
