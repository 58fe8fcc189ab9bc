// attention_forward: causal grouped-query attention, flash style (Dao et al. 2022; the work split of
// FlashAttention-2, Dao 2023): a workgroup takes BQ queries of one head and walks the tiles of BK keys
// they see with an online softmax, so no T×Tk score matrix exists in global memory.
//   o[b, i, h, :] = Σ_j softmax_j(scale · q[b, i, h]·k[b, j, g]) v[b, j, g],   g = h / (H / KV)
//   over keys j in [lo_i, hi_i]: hi_i = qOffset + i (causal), lo_i = hi_i - pos[b, i] (a document
//   starts where positions restart; with plain positions 0..T-1, lo is 0), and with a sliding window
//   (p.window > 0) lo_i >= hi_i - window + 1. Key tiles before the lowest lo of the query tile are
//   not visited, so a window costs O(T·window), not O(T²).
//   lse[b, h, i] = log Σ_j exp(scale · q·k) (the backward recomputes probabilities from it).
// qOffset > 0 when queries continue a KV cache (generation): keys are then the cache.
// Values may be narrower or wider than queries and keys (DV != D: multi-head latent attention).
// Both products are register tiles: S = Q·Kᵀ (BQ×BK), each thread TR rows × TC keys of it, and
// O += P·V (BQ×DV), each thread TR rows × TV columns, kept across key tiles with the softmax's running
// max and sum per row. No thread holds a row of D or DV values, whatever the head dim (a per-thread
// head-dim array spills registers on GPUs): its arrays are TR·TC and TR·TV long. A thread's rows
// are r = ph + RT·a (a < TR): the RT threads that share a column block are consecutive, so on SIMD
// CPUs (lavapipe, 8 lanes) the K and V reads of a column block are one broadcast. The f16-operand
// twin on subgroup matrices is attention_forward_sgmat.wgsl.
// Bindings: 0 q (read, (B, T, H, D)), 1 k (read, (B, Tk, KV, D)), 2 v (read, (B, Tk, KV, VS), the
//   first DV of each row), 3 pos (read, (B, T) i32), 4 o (read_write, (B, T, H, DV)),
//   5 lse (read_write, (B, H, T), every LS-th element), 6 Params.
// Grid: (ceil(T / BQ), H, B); workgroup WG = RT·NVG threads. Tiles: f32Forward in lib/ops/attention.ts.
// CPU reference: attentionRef in lib/ops/attention.ts.

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params; // declared in common/attention_keys.wgsl

const D: u32 = 64u;
const DV: u32 = 64u;
// VS: the distance between two tokens' values in v (DV, or more when values are the first DV channels
// of wider rows: latent attention's cache serves as keys and, its latent part, as values)
const VS: u32 = 64u;
const LS: u32 = 1u; // the distance between two rows' lse: 2 in training, where delta sits between (backward_dq)
const RT: u32 = 8u; // row phases: threads that share a column block
const TR: u32 = 4u; // rows per thread
const BK: u32 = 32u; // keys per tile
const TC: u32 = 4u; // score columns per thread (BK / TC column blocks)
const TV: u32 = 8u; // output columns per thread
const NVG: u32 = 8u; // output column blocks: NVG·TV >= DV
const BQ: u32 = RT * TR;
const WG: u32 = RT * NVG;
const DVP: u32 = NVG * TV; // DV padded with zero columns
const NEG: f32 = -3.4028234663852886e38; // the running max before any key: exp(NEG - m) is 0
// #include "common/attention_keys.wgsl"

var<workgroup> QsT: array<f32, D * BQ>; // QsT[d * BQ + r]: transposed, so that the RT threads of a
var<workgroup> KsT: array<f32, D * BK>; // KsT[d * BK + c]   column block read consecutive words on GPUs
var<workgroup> Vs: array<f32, BK * DVP>; // Vs[c * DVP + e]
var<workgroup> SsT: array<f32, BK * BQ>; // SsT[c * BQ + r]: scores, then probabilities
var<workgroup> rowM: array<f32, BQ>; // running max of scale·q·k
var<workgroup> rowL: array<f32, BQ>; // running Σ exp(scale·q·k - rowM)
var<workgroup> rowC: array<f32, BQ>; // this tile's correction exp(old max - new max)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let h = wg.y;
  let g = h / (p.H / p.KV);
  let q0 = wg.x * BQ;
  for (var e = li; e < opaque(BQ * D); e += WG) {
    let r = e / D;
    let i = q0 + r;
    var x = 0.0;
    if (i < p.T) { x = q[((b * p.T + i) * p.H + h) * D + e % D]; }
    QsT[(e % D) * BQ + r] = x;
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    rowM[r] = NEG;
    rowL[r] = 0.0;
  }
  let start = queryTile(b, q0, li);
  let kEnd = queryTileEnd(q0);

  let ph = li % RT;
  let vg = li / RT;
  // arrays are zeroed by hand: lavapipe has been seen to keep a loop-local array's values from the
  // previous iteration
  var acc: array<f32, TR * TV>;
  for (var x = 0u; x < TR * TV; x++) { acc[x] = 0.0; }
  for (var kt = start; kt < kEnd; kt += BK) {
    for (var e = li; e < opaque(BK * D); e += WG) {
      let c = e / D;
      let j = kt + c;
      var x = 0.0;
      if (j < p.Tk) { x = k[((b * p.Tk + j) * p.KV + g) * D + e % D]; }
      KsT[(e % D) * BK + c] = x;
    }
    for (var e = li; e < opaque(BK * DVP); e += WG) {
      let j = kt + e / DVP;
      let d = e % DVP;
      var x = 0.0;
      if (j < p.Tk && d < DV) { x = v[((b * p.Tk + j) * p.KV + g) * VS + d]; }
      Vs[e] = x;
    }
    workgroupBarrier();
    // S = Q·Kᵀ, unscaled
    for (var task = li; task < opaque(RT * (BK / TC)); task += WG) {
      let tp = task % RT;
      let c0 = (task / RT) * TC;
      var s: array<f32, TR * TC>;
      for (var x = 0u; x < TR * TC; x++) { s[x] = 0.0; }
      for (var d = 0u; d < opaque(D); d++) {
        var qd: array<f32, TR>;
        for (var a = 0u; a < TR; a++) { qd[a] = QsT[d * BQ + tp + RT * a]; }
        for (var c = 0u; c < TC; c++) {
          let kd = KsT[d * BK + c0 + c];
          for (var a = 0u; a < TR; a++) { s[a * TC + c] = fma(qd[a], kd, s[a * TC + c]); }
        }
      }
      for (var a = 0u; a < TR; a++) {
        for (var c = 0u; c < TC; c++) { SsT[(c0 + c) * BQ + tp + RT * a] = s[a * TC + c]; }
      }
    }
    workgroupBarrier();
    // the online softmax, a thread per row: new max, probabilities (0 where masked), running sum.
    // Loops over the seen columns only: runtime bounds, which also keep lavapipe from unrolling exp
    // BK times (seconds of compile time).
    for (var r = li; r < opaque(BQ); r += WG) {
      let cs = seenColumns(r, q0 + r, kt);
      let m = rowM[r];
      var mNew = m;
      for (var c = cs.x; c < cs.y; c++) { mNew = max(mNew, SsT[c * BQ + r] * p.scale); }
      for (var c = 0u; c < cs.x; c++) { SsT[c * BQ + r] = 0.0; }
      for (var c = cs.y; c < BK; c++) { SsT[c * BQ + r] = 0.0; }
      var l = 0.0;
      for (var c = cs.x; c < cs.y; c++) {
        let e = exp(SsT[c * BQ + r] * p.scale - mNew);
        SsT[c * BQ + r] = e;
        l += e;
      }
      let corr = exp(m - mNew);
      rowC[r] = corr;
      rowL[r] = fma(rowL[r], corr, l);
      rowM[r] = mNew;
    }
    workgroupBarrier();
    // O = O·corr + P·V
    var corr: array<f32, TR>;
    for (var a = 0u; a < TR; a++) { corr[a] = rowC[ph + RT * a]; }
    for (var a = 0u; a < TR; a++) {
      for (var e = 0u; e < TV; e++) { acc[a * TV + e] *= corr[a]; }
    }
    for (var c = 0u; c < opaque(BK); c++) {
      var pc: array<f32, TR>;
      for (var a = 0u; a < TR; a++) { pc[a] = SsT[c * BQ + ph + RT * a]; }
      for (var e = 0u; e < TV; e++) {
        let vc = Vs[c * DVP + vg * TV + e];
        for (var a = 0u; a < TR; a++) { acc[a * TV + e] = fma(pc[a], vc, acc[a * TV + e]); }
      }
    }
    workgroupBarrier();
  }
  for (var a = 0u; a < TR; a++) {
    let r = ph + RT * a;
    let i = q0 + r;
    if (i < p.T) {
      let inv = 1.0 / rowL[r];
      let ob = ((b * p.T + i) * p.H + h) * DV;
      for (var e = 0u; e < TV; e++) {
        let c = vg * TV + e;
        if (DVP == DV || c < DV) { o[ob + c] = acc[a * TV + e] * inv; }
      }
    }
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    let i = q0 + r;
    if (i < p.T) { lse[((b * p.H + h) * p.T + i) * LS] = rowM[r] + log(rowL[r]); }
  }
}
