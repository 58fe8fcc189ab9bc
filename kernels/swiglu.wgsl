// swiglu: the gated MLP's activation (Shazeer 2020), h = silu(g) * u with silu(x) = x · sigmoid(x).
//   FORWARD:  out[i] = silu(g[i]) * u[i]
//   backward: dg[i] = dh[i] * u[i] * sigmoid(g)(1 + g(1 - sigmoid(g))),  du[i] = dh[i] * silu(g[i]);
//     with WRITE_H also dh[i] = silu(g[i]) * u[i] after reading it: the fused MLP (lib/ops/swiglu.ts)
//     never stores h in its forward (the down projection computes it as it loads, see matmul.wgsl's
//     SWIGLU_A, in this same expression) and gets it here for the down projection's weight gradient.
// Bindings: 0 g (read), 1 u (read), 2 dh (read_write: read, then h with WRITE_H; backward only, bind
//   anything for forward), 3 out / dg (read_write), 4 du (read_write; backward only), 5 uniform Params.
//   All (n).
// Grid: strideGrid(n).
// CPU reference: swigluRef / swigluBackwardRef in lib/ops/swiglu.ts.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> du: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const FORWARD: bool = true;
const WRITE_H: bool = false;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var i = gid.x; i < p.n; i += nw.x * WG) {
    let x = g[i];
    let s = 1.0 / (1.0 + exp(-x));
    if (FORWARD) {
      out[i] = x * s * u[i];
    } else {
      let d = dh[i];
      let uv = u[i];
      out[i] = d * uv * s * (1.0 + x * (1.0 - s));
      du[i] = d * x * s;
      if (WRITE_H) { dh[i] = x * s * uv; }
    }
  }
}
