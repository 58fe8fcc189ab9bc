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
echo "== bun test test/ops test/tensor (BUNLM_WEBGPU=bun)"
BUNLM_WEBGPU=bun bun test --timeout 120000 test/ops test/tensor 2>&1 | tee -a "$log" || status=1
pass=$(grep -E '^ *[0-9]+ pass$' "$log" | awk '{s+=$1} END {print s+0}')
fail=$(grep -E '^ *[0-9]+ fail$' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
[ "$pass" -gt 0 ] || status=1
[ "$fail" -eq 0 ] || status=1
echo "$pass passed, $fail failed"
exit $status
