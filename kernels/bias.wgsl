// bias: out[r, c] = x[r, c] + b[c], a linear layer's bias (Qwen2's q/k/v projections) added to its
// product, broadcast over rows.
// Bindings: 0 x (read, (R, C)), 1 b (read, (C)), 2 out (read_write, (R, C)), 3 uniform Params.
// Grid: strideGrid(R * C).
// CPU reference: biasRef in lib/ops/bias.ts.

struct Params { n: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gid.x; i < p.n; i += nw.x * WG) { out[i] = x[i] + b[i % p.C]; }
}
