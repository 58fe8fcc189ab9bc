// attention_backward_dkv: the key/value side of flash attention's backward. One thread per key j of
// kv head g sums over every query head h of its group and every query i that sees j:
//   dv_j = Σ_{h,i} P_ij dO_i,    dk_j = scale Σ_{h,i} dS_ij q_i
// with P and dS recomputed as in attention_backward_dq (delta comes from it). Query tiles (q, dO,
// lse, delta, range) are shared in workgroup memory. Deterministic: fixed loop order, no atomics.
// Bindings: 0 q, 1 k, 2 v, 3 pos, 4 do, 5 lse, 6 delta (read), 7 dk (read_write, (B, Tk, KV, D)),
//   8 dv (read_write, (B, Tk, KV, DV)),
//   9 Params. Grid: (ceil(Tk / BKEY), KV, B); workgroup BKEY threads.
// CPU reference: attentionBackwardRef in lib/ops/attention.ts.

struct Params { B: u32, T: u32, Tk: u32, H: u32, KV: u32, qOffset: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

const D: u32 = 64u;
const DV: u32 = 64u;
const BKEY: u32 = 32u;
const BQ: u32 = 32u;

var<workgroup> Qs: array<f32, BQ * D>;
var<workgroup> Os: array<f32, BQ * DV>;
var<workgroup> Ls: array<f32, BQ>;
var<workgroup> Ds: array<f32, BQ>;
var<workgroup> Lo: array<u32, BQ>;

@compute @workgroup_size(BKEY)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let g = wg.y;
  let j = wg.x * BKEY + li;
  let valid = j < p.Tk;
  let group = p.H / p.KV;
  var kj: array<f32, D>;
  var vj: array<f32, DV>;
  var dkj: array<f32, D>;
  var dvj: array<f32, DV>;
  if (valid) {
    let kb = ((b * p.Tk + j) * p.KV + g) * D;
    let vb = ((b * p.Tk + j) * p.KV + g) * DV;
    for (var d = 0u; d < D; d++) { kj[d] = k[kb + d]; }
    for (var d = 0u; d < DV; d++) { vj[d] = v[vb + d]; }
  }
  // queries that can see this block's keys: i >= j0 - qOffset
  let j0 = wg.x * BKEY;
  var first = 0u;
  if (j0 > p.qOffset) { first = ((j0 - p.qOffset) / BQ) * BQ; }
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    for (var it = first; it < p.T; it += BQ) {
      for (var e = li; e < BQ * D; e += BKEY) {
        let i = it + e / D;
        var qv = 0.0;
        if (i < p.T) { qv = q[((b * p.T + i) * p.H + h) * D + e % D]; }
        Qs[e] = qv;
      }
      for (var e = li; e < BQ * DV; e += BKEY) {
        let i = it + e / DV;
        var ov = 0.0;
        if (i < p.T) { ov = dout[((b * p.T + i) * p.H + h) * DV + e % DV]; }
        Os[e] = ov;
      }
      for (var e = li; e < BQ; e += BKEY) {
        let i = it + e;
        if (i < p.T) {
          Ls[e] = lse[(b * p.H + h) * p.T + i];
          Ds[e] = delta[(b * p.H + h) * p.T + i];
          Lo[e] = u32(max(i32(p.qOffset + i) - pos[b * p.T + i], 0));
        }
      }
      workgroupBarrier();
      if (valid) {
        for (var ii = 0u; ii < BQ; ii++) {
          let i = it + ii;
          if (i >= p.T || j > p.qOffset + i || j < Lo[ii]) { continue; }
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < D; d++) { s = fma(Qs[ii * D + d], kj[d], s); }
          for (var d = 0u; d < DV; d++) { dp = fma(Os[ii * DV + d], vj[d], dp); }
          let pr = exp(s * p.scale - Ls[ii]);
          let ds = pr * (dp - Ds[ii]) * p.scale;
          for (var d = 0u; d < DV; d++) { dvj[d] = fma(pr, Os[ii * DV + d], dvj[d]); }
          for (var d = 0u; d < D; d++) { dkj[d] = fma(ds, Qs[ii * D + d], dkj[d]); }
        }
      }
      workgroupBarrier();
    }
  }
  if (valid) {
    let kb = ((b * p.Tk + j) * p.KV + g) * D;
    let vb = ((b * p.Tk + j) * p.KV + g) * DV;
    for (var d = 0u; d < D; d++) { dk[kb + d] = dkj[d]; }
    for (var d = 0u; d < DV; d++) { dv[vb + d] = dvj[d]; }
  }
}
