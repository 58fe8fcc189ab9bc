// muon_momentum: Muon's momentum and Nesterov step (Jordan et al. 2024, KellerJordan/Muon muon_update),
// with torch.lerp's two-branch arithmetic so the result matches the reference to rounding:
//   g = grad · clip                 (clip from grad_norm.wgsl's stats[1]: clipping and loss scale)
//   m ← lerp(m, g, 1-β)             (= β m + (1-β) g)
//   u = lerp(g, m, β)  if NESTEROV  (= (1-β) g + β m), else u = m
//   lerp(s, e, w) = w < 0.5 ? s + w (e - s) : e - (e - s)(1 - w)   (ATen's Lerp.h)
// u is the matrix that Newton–Schulz orthogonalizes next (muon_normalize.wgsl, muon_combine.wgsl).
// Bindings: 0 grad (read, (n)), 1 stats (read, (2)), 2 m (read_write, (n)), 3 u (read_write, (n)),
//   4 uniform Params (w1 = f32(1-β), w2 = f32(β)).
// Grid: strideGrid(n).
// CPU reference: muonRef in lib/optim/muon.ts.

struct Params { n: u32, w1: f32, w2: f32 }

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const NESTEROV: bool = true;
override WG: u32 = 256u;

fn lerp(s: f32, e: f32, w: f32) -> f32 {
  if (abs(w) < 0.5) { return s + w * (e - s); }
  return e - (e - s) * (1.0 - w);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let clip = stats[1];
  for (var i = gid.x; i < p.n; i += nw.x * WG) {
    let g = grad[i] * clip;
    let mi = lerp(m[i], g, p.w1);
    m[i] = mi;
    u[i] = select(mi, lerp(g, mi, p.w2), NESTEROV);
  }
}
