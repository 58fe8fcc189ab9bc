// muon_normalize: Newton–Schulz's starting point X = U / (‖U‖_F + ε), which puts every singular value
// in [0, 1] (the spectral norm is at most the Frobenius norm), where the quintic converges. ε = 1e-7
// as KellerJordan/Muon; ‖U‖_F is grad_norm.wgsl's stats[0] for this one matrix, never read back.
// Bindings: 0 stats (read, (2)), 1 x (read_write, (n)), 2 uniform Params.
// Grid: strideGrid(n).
// CPU reference: newtonSchulzRef in lib/optim/muon.ts.

struct Params { n: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> stats: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let d = stats[0] + p.eps;
  for (var i = gid.x; i < p.n; i += nw.x * WG) { x[i] = x[i] / d; }
}
