// attention_backward_dq: the query side of flash attention's backward (Dao 2023, FlashAttention-2),
// recomputing probabilities from the forward's log-sum-exp:
//   P_ij = exp(scale·q_i·k_j - lse_i),  dP_ij = dO_i·v_j,  delta_i = dO_i·O_i,
//   dS_ij = P_ij (dP_ij - delta_i),     dq_i = scale Σ_j dS_ij k_j
// and writes delta for attention_backward_dkv. Same key ranges and grid as attention_forward.
// Bindings: 0 q, 1 k, 2 v, 3 pos, 4 o, 5 do, 6 lse (read; shapes as in attention_forward; o, do (B, T, H, DV)),
//   7 dq (read_write, (B, T, H, D)), 8 delta (read_write, (B, H, T)), 9 Params.
// CPU reference: attentionBackwardRef in lib/ops/attention.ts.

struct Params { B: u32, T: u32, Tk: u32, H: u32, KV: u32, qOffset: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> o: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

const D: u32 = 64u;
const DV: u32 = 64u;
const VS: u32 = 64u; // values are packed here: VS = DV
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
  var doi: array<f32, DV>;
  var acc: array<f32, D>;
  var hi = 0u;
  var lo = 0u;
  var L = 0.0;
  var dl = 0.0;
  if (valid) {
    let qb = ((b * p.T + i) * p.H + h) * D;
    let ob = ((b * p.T + i) * p.H + h) * DV;
    for (var d = 0u; d < D; d++) { qi[d] = q[qb + d]; }
    for (var d = 0u; d < DV; d++) {
      doi[d] = dout[ob + d];
      dl = fma(doi[d], o[ob + d], dl);
    }
    hi = p.qOffset + i;
    lo = keyLo(b, i);
    L = lse[(b * p.H + h) * p.T + i];
  }
  let start = blockKeyStart(lo, valid, li);
  let kEnd = blockKeyEnd(wg.x);
  for (var kt = start; kt < kEnd; kt += BK) {
    loadKeyTile(b, g, kt, li);
    if (valid) {
      for (var kk = 0u; kk < BK; kk++) {
        let j = kt + kk;
        if (j < lo || j > hi || j >= p.Tk) { continue; }
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) { s = fma(qi[d], Ks[kk * D + d], s); }
        for (var d = 0u; d < DV; d++) { dp = fma(doi[d], Vs[kk * DV + d], dp); }
        let pr = exp(s * p.scale - L);
        let ds = pr * (dp - dl) * p.scale;
        for (var d = 0u; d < D; d++) { acc[d] = fma(ds, Ks[kk * D + d], acc[d]); }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let qb = ((b * p.T + i) * p.H + h) * D;
    for (var d = 0u; d < D; d++) { dq[qb + d] = acc[d]; }
    delta[(b * p.H + h) * p.T + i] = dl;
  }
}
