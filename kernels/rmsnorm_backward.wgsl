// rmsnorm_backward: with g = dy * w,
//   dx[r, c] = rstd[r] * (g[c] - x[r, c] * rstd[r]² * mean_c'(g[c'] * x[r, c']))
//   dwrow[r, c] = dy[r, c] * x[r, c] * rstd[r]   (summed over rows by sum_cols.wgsl into dw)
// Bindings: 0 x (read, (R, C)), 1 w (read, (C)), 2 dy (read, (R, C)), 3 rstd (read, (R)),
//   4 dx (read_write, (R, C)), 5 dwrow (read_write, (R, C)), 6 uniform Params.
// Grid: rowGrid(R); one workgroup per row.
// CPU reference: rmsnormBackwardRef in lib/ops/rmsnorm.ts.

struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dwrow: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const WG: u32 = 64u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.R) { return; }
  let base = r * p.C;
  let rs = rstd[r];
  var s = 0.0;
  for (var c = li; c < p.C; c += WG) { s += dy[base + c] * w[c] * x[base + c]; }
  let m = workgroupSum(s, li) / f32(p.C);
  for (var c = li; c < p.C; c += WG) {
    let xv = x[base + c];
    let d = dy[base + c];
    dx[base + c] = rs * (d * w[c] - xv * rs * rs * m);
    dwrow[base + c] = d * xv * rs;
  }
}
