// adamw: one fused AdamW step (Loshchilov & Hutter 2019) in PyTorch's order of operations, so the
// result matches torch.optim.AdamW to rounding:
//   g = grad · clip                 (clip from grad_norm.wgsl's stats[1])
//   p ← p · (1 - lr·wd)             (decoupled weight decay)
//   m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²
//   p ← p - (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - β_i^step
// Bindings: 0 grad (read, (n)), 1 stats (read, (2)), 2 p, 3 m, 4 v (read_write, (n)), 5 uniform Params.
// Grid: strideGrid(n).
// CPU reference: adamwRef in lib/optim/adamw.ts.

struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32 }

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let clip = stats[1];
  let step = p.lr / p.bc1;
  let sbc2 = sqrt(p.bc2);
  for (var i = gid.x; i < p.n; i += nw.x * WG) {
    let g = grad[i] * clip;
    var x = param[i] * (1.0 - p.lr * p.wd);
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = x - step * mi / (sqrt(vi) / sbc2 + p.eps);
  }
}
