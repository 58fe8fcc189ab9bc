// moe_shared_gate: Qwen2-MoE's gated shared expert, out = res + σ(g[t]) · y[t, c], where g (N, 1) is
// shared_expert_gate's logit of token t and y (N, C) the shared expert's output.
//   MODE 0 forward:      out[t, c] = res[t, c] (RESIDUAL) + σ(g[t]) · a[t, c]       a: y      (N, C)
//   MODE 1 backward dy:  out[t, c] = σ(g[t]) · a[t, c]                              a: dout   (N, C)
//   MODE 2 backward dg:  out[t]    = σ(g[t]) (1 − σ(g[t])) · Σ_c a[t, c] · c_[t, c] a: dout, c_: y (N)
// MODE 2 sums one row in one thread in c order, so the result is deterministic.
// σ is computed from exp(−|x|), so neither side of 0 overflows.
// Bindings: 0 a (read), 1 g (read, (N)), 2 c_ (read: res in MODE 0, y in MODE 2), 3 out (read_write),
//   4 uniform Params.
// Grid: strideGrid(outputs).
// CPU reference: sharedGateRef / sharedGateBackwardRef in lib/ops/moe.ts.

struct Params { N: u32, C: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> c_: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const MODE: u32 = 0u;
const RESIDUAL: bool = false;
override WG: u32 = 256u;

fn sigmoid(x: f32) -> f32 {
  let z = exp(-abs(x));
  return select(z / (1.0 + z), 1.0 / (1.0 + z), x >= 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let C = p.C;
  let m = select(p.N * C, p.N, MODE == 2u);
  for (var i = gid.x; i < m; i += nw.x * WG) {
    if (MODE == 2u) {
      let s = sigmoid(g[i]);
      var acc = 0.0;
      for (var c = 0u; c < C; c++) { acc += a[i * C + c] * c_[i * C + c]; }
      out[i] = s * (1.0 - s) * acc;
    } else {
      var v = sigmoid(g[i / C]) * a[i];
      if (MODE == 0u && RESIDUAL) { v += c_[i]; }
      out[i] = v;
    }
  }
}
