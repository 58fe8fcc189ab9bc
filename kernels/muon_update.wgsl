// muon_update: apply an orthogonalized update, in the reference's order of operations
// (KellerJordan/Muon: update *= scale; p.mul_(1 - lr·wd); p.add_(update, alpha=-lr)):
//   p ← p · (1 - lr·wd) + (-lr) · (o · scale)
// scale = max(1, rows/cols)^0.5 (so a tall matrix's update has the RMS of a square one's); wd is
// decoupled (Loshchilov & Hutter), scaled by Muon's own lr.
// Bindings: 0 o (read, (n): the Newton–Schulz output), 1 param (read_write, (n)), 2 uniform Params
//   (decay = f32(1 - lr·wd), neglr = f32(-lr)).
// Grid: strideGrid(n).
// CPU reference: muonRef in lib/optim/muon.ts.

struct Params { n: u32, decay: f32, neglr: f32, scale: f32 }

@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gid.x; i < p.n; i += nw.x * WG) { param[i] = param[i] * p.decay + p.neglr * (o[i] * p.scale); }
}
