// attention_forward: causal grouped-query attention, flash style (Dao et al. 2022): one pass over key
// tiles with an online softmax, so no T×Tk score matrix exists in global memory.
//   o[b, i, h, :] = Σ_j softmax_j(scale · q[b, i, h]·k[b, j, g]) v[b, j, g],   g = h / (H / KV)
//   over keys j in [lo_i, hi_i]: hi_i = qOffset + i (causal), lo_i = hi_i - pos[b, i] (a document
//   starts where positions restart; with plain positions 0..T-1, lo is 0).
//   lse[b, h, i] = log Σ_j exp(scale · q·k) (the backward recomputes probabilities from it).
// qOffset > 0 when queries continue a KV cache (generation): keys are then the cache.
// Values may be narrower or wider than queries and keys (DV != D: multi-head latent attention).
// Bindings: 0 q (read, (B, T, H, D)), 1 k (read, (B, Tk, KV, D)), 2 v (read, (B, Tk, KV, DV)),
//   3 pos (read, (B, T) i32), 4 o (read_write, (B, T, H, DV)), 5 lse (read_write, (B, H, T)), 6 Params.
// Grid: (ceil(T / BQ), H, B); workgroup BQ threads, one query each; K/V tiles of BK keys shared.
// CPU reference: attentionRef in lib/ops/attention.ts.

struct Params { B: u32, T: u32, Tk: u32, H: u32, KV: u32, qOffset: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const D: u32 = 64u;
const DV: u32 = 64u;
// VS: the distance between two tokens' values in v (DV, or more when values are the first DV channels
// of wider rows: latent attention's cache serves as keys and, its latent part, as values)
const VS: u32 = 64u;
const BQ: u32 = 32u;
const BK: u32 = 32u;
// #include "common/attention_keys.wgsl"

@compute @workgroup_size(BQ)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let h = wg.y;
  let g = h / (p.H / p.KV);
  let i = wg.x * BQ + li;
  let valid = i < p.T;
  var qi: array<f32, D>;
  var acc: array<f32, DV>;
  var hi = 0u;
  var lo = 0u;
  if (valid) {
    let qb = ((b * p.T + i) * p.H + h) * D;
    for (var d = 0u; d < D; d++) { qi[d] = q[qb + d]; }
    hi = p.qOffset + i;
    lo = keyLo(b, i);
  }
  let start = blockKeyStart(lo, valid, li);
  let kEnd = blockKeyEnd(wg.x);
  var m = -3.4028234663852886e38;
  var l = 0.0;
  for (var kt = start; kt < kEnd; kt += BK) {
    loadKeyTile(b, g, kt, li);
    if (valid) {
      for (var kk = 0u; kk < BK; kk++) {
        let j = kt + kk;
        if (j < lo || j > hi || j >= p.Tk) { continue; }
        var s = 0.0;
        for (var d = 0u; d < D; d++) { s = fma(qi[d], Ks[kk * D + d], s); }
        s *= p.scale;
        let mNew = max(m, s);
        let corr = exp(m - mNew);
        let e = exp(s - mNew);
        l = l * corr + e;
        for (var d = 0u; d < DV; d++) { acc[d] = fma(acc[d], corr, e * Vs[kk * DV + d]); }
        m = mNew;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let ob = ((b * p.T + i) * p.H + h) * DV;
    let inv = 1.0 / l;
    for (var d = 0u; d < DV; d++) { o[ob + d] = acc[d] * inv; }
    lse[(b * p.H + h) * p.T + i] = m + log(l);
  }
}
