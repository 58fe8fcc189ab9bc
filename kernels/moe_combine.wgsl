// moe_combine: moving tokens between token order (N, C) and the plan's expert-sorted rows (N·K, C)
// (moe_plan.wgsl: rows[r] = slot of row r, slot_row[s] = row of slot s, slot s = t·K + j).
//   MODE 0 gather:          out[r, c] = a[rows[r] / K, c]                                  (N·K, C)
//   MODE 1 combine:         out[t, c] = res[t, c] + Σ_j w[t, j] · a[slot_row[t·K + j], c] (N, C)
//                           (RESIDUAL false: no res; WEIGHTED false: w = 1, the gather's backward)
//   MODE 2 combine bwd, rows:    out[r, c] = w[rows[r]] · a[rows[r] / K, c]         a: dy (N, C)
//   MODE 3 combine bwd, weights: out[t, j] = Σ_c a[t, c] · b[slot_row[t·K + j], c]  a: dy, b: rows' y
// The K terms of a combine are added in j order, so the result is deterministic.
// Bindings: 0 a (read), 1 b (read: the rows' values, MODE 3), 2 w (read, (N, K)), 3 res (read,
//   (N, C)), 4 rows (read, u32), 5 slot_row (read, u32), 6 out (read_write), 7 uniform Params.
// Grid: strideGrid(outputs).
// CPU reference: gatherRef / combineRef in lib/ops/moe.ts.

struct Params { N: u32, K: u32, C: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read> rows: array<u32>;
@group(0) @binding(5) var<storage, read> slot_row: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const MODE: u32 = 0u;
const RESIDUAL: bool = false;
const WEIGHTED: bool = true;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let K = p.K;
  let C = p.C;
  let n = select(p.N * C, p.N * K * C, MODE == 0u || MODE == 2u);
  let m = select(n, p.N * K, MODE == 3u);
  for (var i = gid.x; i < m; i += nw.x * WG) {
    if (MODE == 0u) {
      out[i] = a[(rows[i / C] / K) * C + i % C];
    } else if (MODE == 1u) {
      let t = i / C;
      let c = i % C;
      var s = 0.0;
      if (RESIDUAL) { s = res[i]; }
      for (var j = 0u; j < K; j++) {
        let v = a[slot_row[t * K + j] * C + c];
        s += select(v, w[t * K + j] * v, WEIGHTED);
      }
      out[i] = s;
    } else if (MODE == 2u) {
      let slot = rows[i / C];
      out[i] = w[slot] * a[(slot / K) * C + i % C];
    } else {
      let t = i / K;
      let r = slot_row[i];
      var s = 0.0;
      for (var c = 0u; c < C; c++) { s += a[t * C + c] * b[r * C + c]; }
      out[i] = s;
    }
  }
}
