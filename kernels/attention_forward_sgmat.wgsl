// attention_forward_sgmat: attention_forward on subgroup matrices, the arithmetic of --precision
// mixed: q, k, v and the probabilities rounded to f16, products accumulated in f32 — on tensor cores
// where the adapter has them (SUBGROUP_MATRIX "native"), through the exact emulation elsewhere
// ("emulate"); the same text either way (common/attention_sgmat.wgsl). Same outputs and key ranges
// as attention_forward (o, lse), same work split (FlashAttention-2, Dao 2023): SGM_SUBGROUPS
// subgroups of SGM_SUBGROUP_SIZE invocations (the adapter's, whatever it is), each owning SGM_M
// queries, walk the key tiles of BK keys:
//   S = Q·Kᵀ     (SGM_M × BK per subgroup: BK/SGM_N result matrices, DP/SGM_K steps over the head dim)
//   softmax      (a thread per row on S in workgroup memory: running max and sum, P as f16)
//   O += P·V     (SGM_M × DVP per subgroup: DVP/SGM_N result matrices, kept across key tiles)
// A result matrix's layout is opaque, so O's rows cannot be rescaled where they lie; instead the
// running max a row's probabilities are taken against moves only when a later tile exceeds it by
// more than TAU (FlashAttention-4's lazy rescaling): then O goes through workgroup memory once,
// scaled by exp(old max - new max). Meanwhile probabilities stay below e^TAU, well inside f16, and
// the running sum is taken against the same max, so o = O / sum is exact whatever the max.
// D and DV are padded with zero columns to DP and DVP (multiples of the matrix sizes).
// Bindings as attention_forward: 0 q (read, (B, T, H, D)), 1 k (read, (B, Tk, KV, D)), 2 v (read,
//   (B, Tk, KV, VS)), 3 pos (read, (B, T) i32), 4 o (read_write, (B, T, H, DV)), 5 lse (read_write,
//   (B, H, T), every LS-th element), 6 Params. Grid: (ceil(T / BQ), H, B). Defines: lib/ops/attention.ts (sgmatForward).
// CPU reference: attentionRef in lib/ops/attention.ts on f16-rounded inputs.
enable f16;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params; // declared in common/attention_keys.wgsl

const D: u32 = 64u;
const DV: u32 = 64u;
const VS: u32 = 64u;
const LS: u32 = 1u; // the distance between two rows' lse: 2 in training, where delta sits between (backward_dq) // the distance between two tokens' values in v
const DP: u32 = 64u; // D rounded up to a multiple of SGM_K
const DVP: u32 = 64u; // DV rounded up to a multiple of SGM_N
const SG: u32 = 2u; // subgroups
const BK: u32 = 32u; // keys per tile, a multiple of SGM_N and SGM_K
// #include "common/attention_sgmat.wgsl"

const SGM_SUBGROUPS: u32 = SG;
const WG: u32 = SG * SGM_SUBGROUP_SIZE;
const BQ: u32 = SG * SGM_M;
const NO: u32 = DVP / SGM_N; // output matrices per subgroup
const TAU: f32 = 8.0; // e^8 ≈ 2981: probabilities against a stale max stay far below f16's 65504
const NEG: f32 = -3.4028234663852886e38;
// #include "common/attention_keys.wgsl"

const PO: u32 = BQ * DP; // P's offset in Ls
const VO: u32 = BK * DP; // V's offset in Rs
alias SgmLeftSource = array<f16, BQ * DP + BQ * BK>;
alias SgmRightSource = array<f16, BK * DP + BK * DVP>;
alias SgmResultTarget = array<f32, BQ * BK>;

var<workgroup> Ls: SgmLeftSource; // Q (BQ × DP) at 0, P (BQ × BK) at PO, row-major
var<workgroup> Rs: SgmRightSource; // K (BK × DP) at 0 (Kᵀ is its column-major view), V (BK × DVP) at VO
var<workgroup> Ss: SgmResultTarget; // S (BQ × BK); the output's way out and rescaling's scratch
var<workgroup> rowM: array<f32, BQ>; // the max the row's probabilities are taken against
var<workgroup> rowL: array<f32, BQ>; // Σ of the row's probabilities (as rounded to f16)
var<workgroup> rowT: array<f32, BQ>; // this tile's max
var<workgroup> rowC: array<f32, BQ>; // O's row factor when rescaling
var<workgroup> rescale: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, inv: SgmInvocation) {
  let sg = sgmBegin(inv);
  let li = inv.index;
  let b = wg.z;
  let h = wg.y;
  let g = h / (p.H / p.KV);
  let q0 = wg.x * BQ;
  for (var e = li; e < opaque(BQ * DP); e += WG) {
    let i = q0 + e / DP;
    let d = e % DP;
    var x = 0.0;
    if (i < p.T && d < D) { x = q[((b * p.T + i) * p.H + h) * D + d]; }
    Ls[e] = toF16(x);
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    rowM[r] = NEG;
    rowL[r] = 0.0;
  }
  let start = queryTile(b, q0, li);
  let kEnd = queryTileEnd(q0);
  let rows = sg * SGM_M; // this subgroup's first row

  var acc: array<SgmResult, NO>;
  for (var x = 0u; x < sgmLoop(NO); x++) { acc[x] = sgmZero(); }
  for (var kt = start; kt < kEnd; kt += BK) {
    for (var e = li; e < opaque(BK * DP); e += WG) {
      let j = kt + e / DP;
      let d = e % DP;
      var x = 0.0;
      if (j < p.Tk && d < D) { x = k[((b * p.Tk + j) * p.KV + g) * D + d]; }
      Rs[e] = toF16(x);
    }
    for (var e = li; e < opaque(BK * DVP); e += WG) {
      let j = kt + e / DVP;
      let d = e % DVP;
      var x = 0.0;
      if (j < p.Tk && d < DV) { x = v[((b * p.Tk + j) * p.KV + g) * VS + d]; }
      Rs[VO + e] = toF16(x);
    }
    workgroupBarrier();
    // S = Q·Kᵀ, unscaled
    for (var n = 0u; n < sgmLoop(BK / SGM_N); n++) {
      var s = sgmZero();
      for (var t = 0u; t < sgmLoop(DP / SGM_K); t++) {
        let left = sgmLoadLeft(&Ls, rows * DP + t * SGM_K, DP, false);
        let right = sgmLoadRight(&Rs, n * SGM_N * DP + t * SGM_K, DP, true);
        s = sgmMultiplyAccumulate(left, right, s);
      }
      sgmStoreResult(&Ss, rows * BK + n * SGM_N, s, BK, false);
    }
    workgroupBarrier();
    // this tile's max per row; O is rescaled when a row's max grows by more than TAU
    for (var r = li; r < opaque(BQ); r += WG) {
      let cs = seenColumns(r, q0 + r, kt);
      var t = NEG;
      for (var c = cs.x; c < cs.y; c++) { t = max(t, Ss[r * BK + c] * p.scale); }
      rowT[r] = t;
    }
    workgroupBarrier();
    if (li == 0u) {
      var grow = 0u;
      for (var r = 0u; r < opaque(BQ); r++) {
        if (rowM[r] > NEG && rowT[r] > rowM[r] + TAU) { grow = 1u; }
      }
      rescale = grow;
    }
    let grow = workgroupUniformLoad(&rescale) != 0u;
    // probabilities against the row's max (a stale one, within TAU, unless rescaling), 0 where masked
    for (var r = li; r < opaque(BQ); r += WG) {
      let cs = seenColumns(r, q0 + r, kt);
      var m = rowM[r];
      var corr = 1.0;
      if (m == NEG || (grow && rowT[r] > m)) {
        corr = exp(m - rowT[r]); // 0 for a row's first keys, whose O is still 0
        m = rowT[r];
      }
      for (var c = 0u; c < cs.x; c++) { Ls[PO + r * BK + c] = 0.0h; }
      for (var c = cs.y; c < BK; c++) { Ls[PO + r * BK + c] = 0.0h; }
      var l = 0.0;
      for (var c = cs.x; c < cs.y; c++) {
        let e = f16(exp(Ss[r * BK + c] * p.scale - m));
        Ls[PO + r * BK + c] = e;
        l += f32(e);
      }
      rowC[r] = corr;
      rowL[r] = fma(rowL[r], corr, l);
      rowM[r] = m;
    }
    workgroupBarrier();
    if (grow) {
      // O's rows times rowC, BK / SGM_N matrices at a time through Ss
      for (var x0 = 0u; x0 < sgmLoop(NO); x0 += BK / SGM_N) {
        for (var x = x0; x < sgmLoop(min(x0 + BK / SGM_N, NO)); x++) {
          sgmStoreResult(&Ss, rows * BK + (x - x0) * SGM_N, acc[x], BK, false);
        }
        workgroupBarrier();
        for (var e = li; e < opaque(BQ * BK); e += WG) { Ss[e] *= rowC[e / BK]; }
        workgroupBarrier();
        for (var x = x0; x < sgmLoop(min(x0 + BK / SGM_N, NO)); x++) {
          acc[x] = sgmLoadResult(&Ss, rows * BK + (x - x0) * SGM_N, BK, false);
        }
        workgroupBarrier();
      }
    }
    // O += P·V
    for (var x = 0u; x < sgmLoop(NO); x++) {
      for (var t = 0u; t < sgmLoop(BK / SGM_K); t++) {
        let left = sgmLoadLeft(&Ls, PO + rows * BK + t * SGM_K, BK, false);
        let right = sgmLoadRight(&Rs, VO + t * SGM_K * DVP + x * SGM_N, DVP, false);
        acc[x] = sgmMultiplyAccumulate(left, right, acc[x]);
      }
    }
    workgroupBarrier();
  }
  // o = O / rowL, BK / SGM_N matrices at a time through Ss
  for (var x0 = 0u; x0 < sgmLoop(NO); x0 += BK / SGM_N) {
    for (var x = x0; x < sgmLoop(min(x0 + BK / SGM_N, NO)); x++) {
      sgmStoreResult(&Ss, rows * BK + (x - x0) * SGM_N, acc[x], BK, false);
    }
    workgroupBarrier();
    for (var e = li; e < opaque(BQ * BK); e += WG) {
      let r = e / BK;
      let i = q0 + r;
      let d = x0 * SGM_N + e % BK;
      if (i < p.T && d < DV) { o[((b * p.T + i) * p.H + h) * DV + d] = Ss[e] / rowL[r]; }
    }
    workgroupBarrier();
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    let i = q0 + r;
    if (i < p.T) { lse[((b * p.H + h) * p.T + i) * LS] = rowM[r] + log(rowL[r]); }
  }
}
