// sum_cols: out[c] = Σ_r x[r, c]  (or out[c] += ... with ACCUMULATE) — the row-sum a weight gradient
// needs (RMSNorm's dw). Each workgroup owns 16 columns; its 16 × 16 threads stride over the rows in a
// fixed order and reduce in workgroup memory, so the result is deterministic.
// Bindings: 0 x (read, (R, C)), 1 out (read_write, (C)), 2 uniform Params.
// Grid: (ceil(C / 16)).
// CPU reference: sumColsRef in lib/ops/sum_cols.ts.

struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const COLS: u32 = 16u;
const LANES: u32 = 16u;
const ACCUMULATE: bool = false;
var<workgroup> part: array<f32, COLS * LANES>;

@compute @workgroup_size(COLS, LANES)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wg.x * COLS + lid.x;
  var s = 0.0;
  if (c < p.C) {
    for (var r = lid.y; r < p.R; r += LANES) { s += x[r * p.C + c]; }
  }
  part[lid.y * COLS + lid.x] = s;
  workgroupBarrier();
  for (var k = LANES / 2u; k > 0u; k >>= 1u) {
    if (lid.y < k) { part[lid.y * COLS + lid.x] += part[(lid.y + k) * COLS + lid.x]; }
    workgroupBarrier();
  }
  if (lid.y == 0u && c < p.C) {
    if (ACCUMULATE) { out[c] += part[lid.x]; } else { out[c] = part[lid.x]; }
  }
}
