// rmsnorm_forward: y[r, :] = x[r, :] * rstd[r] * w,  rstd[r] = 1 / sqrt(mean(x[r, :]²) + eps)
// (Zhang & Sennrich 2019; HF LlamaRMSNorm computes the mean of squares in f32, as here).
// Bindings: 0 x (read, (R, C)), 1 w (read, (C)), 2 y (read_write, (R, C)), 3 rstd (read_write, (R)),
//   4 uniform Params. Grid: rowGrid(R); one workgroup of WG threads per row.
// CPU reference: rmsnormRef in lib/ops/rmsnorm.ts.

struct Params { R: u32, C: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.R) { return; }
  let base = r * p.C;
  var s = 0.0;
  for (var c = li; c < p.C; c += WG) { let v = x[base + c]; s += v * v; }
  let rs = inverseSqrt(workgroupSum(s, li) / f32(p.C) + p.eps);
  for (var c = li; c < p.C; c += WG) { y[base + c] = x[base + c] * rs * w[c]; }
  if (li == 0u) { rstd[r] = rs; }
}
