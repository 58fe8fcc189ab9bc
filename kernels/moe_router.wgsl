// moe_router: a mixture-of-experts router's per-token work (Qwen2-MoE, DeepSeek-V2 routing), one
// thread per token t of N, E experts, top K:
//   MODE 0 softmax:      out[t, e] = exp(a[t, e] - max) / Σ exp(a[t, ·] - max)          a: logits (N, E)
//   MODE 1 softmax bwd:  out[t, e] = p[t, e] · (dp[t, e] - Σ_e' dp[t, e'] p[t, e'])      a: p, b: dp (N, E)
//   MODE 2 top-k:        the K largest probabilities of a[t, ·] in falling order, ties to the lowest
//                        expert id (a strict >), ids into idx_out (N, K), weights into out (N, K):
//                        w_j = scale · s_j / Σ_i s_i with NORM, else scale · s_j
//   MODE 3 top-k bwd:    out[t, e] (N, E): 0 except at the chosen experts, where it is ds_j:
//                        NORM: scale · (dw_j / S - Σ_i dw_i s_i / S²), else scale · dw_j;  b: dw (N, K)
// Bindings: 0 a (read, f32), 1 b (read, f32), 2 idx (read, u32 (N, K); MODE 3), 3 out (read_write,
//   f32), 4 idx_out (read_write, u32 (N, K); MODE 2), 5 uniform Params. Unused bindings: any buffer.
// Grid: strideGrid(N).
// CPU reference: routerSoftmaxRef / topkRef (and backward) in lib/ops/moe.ts.

struct Params { N: u32, E: u32, K: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

const MODE: u32 = 0u;
const NORM: bool = false;
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let E = p.E;
  let K = p.K;
  for (var t = gid.x; t < p.N; t += nw.x * WG) {
    let r = t * E;
    if (MODE == 0u) {
      var m = a[r];
      for (var e = 1u; e < E; e++) { m = max(m, a[r + e]); }
      var s = 0.0;
      for (var e = 0u; e < E; e++) { s += exp(a[r + e] - m); }
      for (var e = 0u; e < E; e++) { out[r + e] = exp(a[r + e] - m) / s; }
    } else if (MODE == 1u) {
      var dot = 0.0;
      for (var e = 0u; e < E; e++) { dot += a[r + e] * b[r + e]; }
      for (var e = 0u; e < E; e++) { out[r + e] = a[r + e] * (b[r + e] - dot); }
    } else if (MODE == 2u) {
      var S = 0.0;
      for (var j = 0u; j < K; j++) {
        var best = 0u;
        var bv = -1.0;
        for (var e = 0u; e < E; e++) {
          var taken = false;
          for (var i = 0u; i < j; i++) { if (idx_out[t * K + i] == e) { taken = true; } }
          if (!taken && a[r + e] > bv) { bv = a[r + e]; best = e; }
        }
        idx_out[t * K + j] = best;
        out[t * K + j] = bv;
        S += bv;
      }
      for (var j = 0u; j < K; j++) {
        let s = out[t * K + j];
        out[t * K + j] = select(p.scale * s, p.scale * (s / S), NORM);
      }
    } else {
      var S = 0.0;
      var dws = 0.0;
      for (var j = 0u; j < K; j++) {
        let s = a[r + idx[t * K + j]];
        S += s;
        dws += b[t * K + j] * s;
      }
      for (var e = 0u; e < E; e++) { out[r + e] = 0.0; }
      for (var j = 0u; j < K; j++) {
        let dw = b[t * K + j];
        out[r + idx[t * K + j]] = select(p.scale * dw, p.scale * (dw / S - dws / (S * S)), NORM);
      }
    }
  }
}
