// attention_backward_dkv: the key/value side of flash attention's backward (Dao 2023,
// FlashAttention-2). A workgroup takes BK keys of kv head g and walks, for every query head h of its
// group, the tiles of BQ queries that see them:
//   dv_j = Σ_{h,i} P_ij dO_i,    dk_j = scale Σ_{h,i} dS_ij q_i
// with P and dS recomputed as in attention_backward_dq (delta comes from it). Register tiles, keys as
// rows: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (BK×BQ), TR keys × TC queries per thread, then dV += Pᵀ·dO and
// dK += dSᵀ·Q, TR keys × TV (TD) columns per thread, kept across query tiles; no thread holds a
// head-dim row. Query tiles that see none of the block's keys (before them, all in later
// documents, or all past their sliding window) are skipped. Deterministic: fixed loop order, no
// atomics on the sums.
// Bindings: 0 q, 1 k, 2 v, 3 pos, 4 do, 5 stats ((B, H, T, 2): lse, delta) (read), 6 dk
//   (read_write, (B, Tk, KV, D)), 7 dv (read_write, (B, Tk, KV, DV)), 8 Params.
// Grid: (ceil(Tk / BK), KV, B); workgroup WG = RT·NG threads. The twin on subgroup matrices is
// attention_backward_dkv_sgmat.wgsl. CPU reference: attentionBackwardRef in lib/ops/attention.ts.

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>; // (B, H, T, 2): lse, delta
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
@group(0) @binding(8) var<uniform> p: Params; // declared in common/attention_keys.wgsl

const D: u32 = 64u;
const DV: u32 = 64u;
const RT: u32 = 8u; // row phases: threads that share a column block
const TR: u32 = 4u; // key rows per thread
const BQ: u32 = 16u; // queries per tile
const TC: u32 = 4u; // score columns (queries) per thread
const TD: u32 = 8u; // dk columns per thread
const TV: u32 = 8u; // dv columns per thread
const NG: u32 = 8u; // column blocks: NG·TD >= D, NG·TV >= DV
const BK: u32 = RT * TR;
const WG: u32 = RT * NG;
const DP: u32 = NG * TD; // D and DV padded with zero rows of QsT and OsT
const DVP: u32 = NG * TV;
// #include "common/attention_keys.wgsl"

var<workgroup> KsT: array<f32, D * BK>; // KsT[d * BK + r]
var<workgroup> VsT: array<f32, DV * BK>; // VsT[e * BK + r]
var<workgroup> QsT: array<f32, DP * BQ>; // QsT[d * BQ + c]
var<workgroup> OsT: array<f32, DVP * BQ>; // dO, OsT[e * BQ + c]
var<workgroup> Ps: array<f32, BQ * BK>; // Ps[c * BK + r]
var<workgroup> dSs: array<f32, BQ * BK>; // dSs[c * BK + r] = scale · dS
var<workgroup> colLse: array<f32, BQ>;
var<workgroup> colDelta: array<f32, BQ>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let g = wg.y;
  let k0 = wg.x * BK;
  let group = p.H / p.KV;
  for (var e = li; e < opaque(BK * D); e += WG) {
    let r = e / D;
    let j = k0 + r;
    var x = 0.0;
    if (j < p.Tk) { x = k[((b * p.Tk + j) * p.KV + g) * D + e % D]; }
    KsT[(e % D) * BK + r] = x;
  }
  for (var e = li; e < opaque(BK * DV); e += WG) {
    let r = e / DV;
    let j = k0 + r;
    var x = 0.0;
    if (j < p.Tk) { x = v[((b * p.Tk + j) * p.KV + g) * DV + e % DV]; }
    VsT[(e % DV) * BK + r] = x;
  }

  let ph = li % RT;
  let cg = li / RT;
  var accK: array<f32, TR * TD>;
  var accV: array<f32, TR * TV>;
  for (var x = 0u; x < TR * TD; x++) { accK[x] = 0.0; }
  for (var x = 0u; x < TR * TV; x++) { accV[x] = 0.0; }
  let iEnd = queryTilesEnd(k0);
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    for (var it = firstQueryTile(k0); it < iEnd; it += BQ) {
      for (var c = li; c < opaque(BQ); c += WG) {
        let i = it + c;
        if (i < p.T) {
          colLse[c] = stats[2u * ((b * p.H + h) * p.T + i)];
          colDelta[c] = stats[2u * ((b * p.H + h) * p.T + i) + 1u];
        }
      }
      // rowLo (attention_keys.wgsl) now holds this query tile's lo; its first key tile past this
      // block means none of its queries sees these keys. The barrier in queryTile also ends the
      // previous tile's reads of QsT and OsT.
      if (queryTile(b, it, li) > k0) { continue; }
      for (var e = li; e < opaque(BQ * DP); e += WG) {
        let c = e / DP;
        let d = e % DP;
        let i = it + c;
        var x = 0.0;
        if (i < p.T && d < D) { x = q[((b * p.T + i) * p.H + h) * D + d]; }
        QsT[d * BQ + c] = x;
      }
      for (var e = li; e < opaque(BQ * DVP); e += WG) {
        let c = e / DVP;
        let d = e % DVP;
        let i = it + c;
        var x = 0.0;
        if (i < p.T && d < DV) { x = dout[((b * p.T + i) * p.H + h) * DV + d]; }
        OsT[d * BQ + c] = x;
      }
      workgroupBarrier();
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ, then P and scale·dS where the query sees the key, else 0
      for (var task = li; task < opaque(RT * (BQ / TC)); task += WG) {
        let tp = task % RT;
        let c0 = (task / RT) * TC;
        var s: array<f32, TR * TC>;
        var dp: array<f32, TR * TC>;
        for (var x = 0u; x < TR * TC; x++) {
          s[x] = 0.0;
          dp[x] = 0.0;
        }
        for (var d = 0u; d < opaque(D); d++) {
          var kd: array<f32, TR>;
          for (var a = 0u; a < TR; a++) { kd[a] = KsT[d * BK + tp + RT * a]; }
          for (var c = 0u; c < TC; c++) {
            let qd = QsT[d * BQ + c0 + c];
            for (var a = 0u; a < TR; a++) { s[a * TC + c] = fma(kd[a], qd, s[a * TC + c]); }
          }
        }
        for (var e = 0u; e < opaque(DV); e++) {
          var ve: array<f32, TR>;
          for (var a = 0u; a < TR; a++) { ve[a] = VsT[e * BK + tp + RT * a]; }
          for (var c = 0u; c < TC; c++) {
            let oe = OsT[e * BQ + c0 + c];
            for (var a = 0u; a < TR; a++) { dp[a * TC + c] = fma(ve[a], oe, dp[a * TC + c]); }
          }
        }
        for (var c = 0u; c < TC; c++) {
          let cc = c0 + c;
          let rs = seenColumns(cc, it + cc, k0);
          let L = colLse[cc];
          let dl = colDelta[cc];
          for (var a = 0u; a < TR; a++) {
            let r = tp + RT * a;
            let seen = r >= rs.x && r < rs.y;
            let pr = exp(s[a * TC + c] * p.scale - L);
            Ps[cc * BK + r] = select(0.0, pr, seen);
            dSs[cc * BK + r] = select(0.0, pr * (dp[a * TC + c] - dl) * p.scale, seen);
          }
        }
      }
      workgroupBarrier();
      // dV += Pᵀ·dO, dK += dSᵀ·Q
      for (var c = 0u; c < opaque(BQ); c++) {
        var pc: array<f32, TR>;
        var dsc: array<f32, TR>;
        for (var a = 0u; a < TR; a++) {
          pc[a] = Ps[c * BK + ph + RT * a];
          dsc[a] = dSs[c * BK + ph + RT * a];
        }
        for (var x = 0u; x < TV; x++) {
          let oe = OsT[(cg * TV + x) * BQ + c];
          for (var a = 0u; a < TR; a++) { accV[a * TV + x] = fma(pc[a], oe, accV[a * TV + x]); }
        }
        for (var x = 0u; x < TD; x++) {
          let qd = QsT[(cg * TD + x) * BQ + c];
          for (var a = 0u; a < TR; a++) { accK[a * TD + x] = fma(dsc[a], qd, accK[a * TD + x]); }
        }
      }
    }
  }
  for (var a = 0u; a < TR; a++) {
    let j = k0 + ph + RT * a;
    if (j < p.Tk) {
      let kb = ((b * p.Tk + j) * p.KV + g) * D;
      let vb = ((b * p.Tk + j) * p.KV + g) * DV;
      for (var x = 0u; x < TD; x++) {
        let d = cg * TD + x;
        if (DP == D || d < D) { dk[kb + d] = accK[a * TD + x]; }
      }
      for (var x = 0u; x < TV; x++) {
        let e = cg * TV + x;
        if (DVP == DV || e < DV) { dv[vb + e] = accV[a * TV + x]; }
      }
    }
  }
}
