// muon_combine: x ← α·x + β·y, the two linear combinations of a Newton–Schulz quintic iteration
// (KellerJordan/Muon zeropower_via_newtonschulz5), the matmuls around them done by matmul.ts:
//   B = b·A + c·(A·A)      (x = A, y = A·A; α = b, β = c)
//   X ← a·X + B·X          (x = X, y = B·X; α = a, β = 1)
// Bindings: 0 y (read, (n)), 1 x (read_write, (n)), 2 uniform Params.
// Grid: strideGrid(n).
// CPU reference: newtonSchulzRef in lib/optim/muon.ts.

struct Params { n: u32, alpha: f32, beta: f32 }

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gid.x; i < p.n; i += nw.x * WG) { x[i] = p.alpha * x[i] + p.beta * y[i]; }
}
