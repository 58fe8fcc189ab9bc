// rmsnorm_backward: with g = dy * w,
//   dx[r, c] = rstd[r] * (g[c] - x[r, c] * rstd[r]² * mean_c'(g[c'] * x[r, c']))
//   dwrow[r, c] = dy[r, c] * x[r, c] * rstd[r]   (summed over rows by sum_cols.wgsl into dw)
// RESIDUAL: dx[r, c] += dres[r, c], the gradient x also gets as a pre-norm block's residual (the sum
//   autograd would otherwise add in a kernel of its own; same two values, same rounding).
// Bindings: 0 x (read, (R, C)), 1 w (read, (C)), 2 dy (read, (R, C)), 3 rstd (read, (R)),
//   4 dres (read, (R, C); RESIDUAL, else any buffer), 5 dx (read_write, (R, C)),
//   6 dwrow (read_write, (R, C)), 7 uniform Params.
// Grid: rowGrid(R); one workgroup per row.
// CPU reference: rmsnormBackwardRef in lib/ops/rmsnorm.ts.

struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> dres: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dwrow: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const WG: u32 = 64u;
const RESIDUAL: bool = false;
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
    let v = rs * (d * w[c] - xv * rs * rs * m);
    if (RESIDUAL) { dx[base + c] = v + dres[base + c]; } else { dx[base + c] = v; }
    dwrow[base + c] = d * xv * rs;
  }
}
