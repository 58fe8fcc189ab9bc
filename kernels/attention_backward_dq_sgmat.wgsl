// attention_backward_dq_sgmat: attention_backward_dq on subgroup matrices (f16 operands, f32
// accumulation; native or emulated, see attention_forward_sgmat.wgsl). Each of SGM_SUBGROUPS
// subgroups owns SGM_M queries; per key tile of BK keys:
//   S = Q·Kᵀ, dP = dO·Vᵀ   (SGM_M × BK per subgroup, to workgroup memory)
//   dS = P (dP - delta) · scale, P = exp(scale·S - lse)   (a thread per element, f16)
//   dQ += dS·K             (SGM_M × DP per subgroup: DP/SGM_N result matrices, kept across key tiles)
// and writes delta = rowsum(dO ∘ O) (in f32, from the f32 tensors) for attention_backward_dkv_sgmat.
// D and DV are padded with zero columns to DP and DVP (multiples of SGM_N and SGM_K).
// Bindings as attention_backward_dq: 0 q, 1 k, 2 v, 3 pos, 4 o, 5 do (read), 6 stats (read_write,
//   (B, H, T, 2): lse in, delta out), 7 dq (read_write, (B, T, H, D)), 8 Params. Grid: (ceil(T / BQ), H, B).
// CPU reference: attentionBackwardRef in lib/ops/attention.ts on f16-rounded inputs.
enable f16;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> o: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>; // (B, H, T, 2): lse (read), delta (written)
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<uniform> p: Params; // declared in common/attention_keys.wgsl

const D: u32 = 64u;
const DV: u32 = 64u;
const DP: u32 = 64u; // D rounded up to a multiple of SGM_N and SGM_K
const DVP: u32 = 64u; // DV rounded up to a multiple of SGM_K
const SG: u32 = 2u; // subgroups
const BK: u32 = 32u; // keys per tile, a multiple of SGM_N and SGM_K
// #include "common/attention_sgmat.wgsl"

const SGM_SUBGROUPS: u32 = SG;
const WG: u32 = SG * SGM_SUBGROUP_SIZE;
const BQ: u32 = SG * SGM_M;
const NQ: u32 = DP / SGM_N; // dq matrices per subgroup
// #include "common/attention_keys.wgsl"

const OO: u32 = BQ * DP; // dO's offset in Ls
const SO: u32 = OO + BQ * DVP; // dS's offset in Ls
const VO: u32 = BK * DP; // V's offset in Rs
const PO: u32 = BQ * BK; // dP's offset in Ss
alias SgmLeftSource = array<f16, BQ * DP + BQ * DVP + BQ * BK>;
alias SgmRightSource = array<f16, BK * DP + BK * DVP>;
alias SgmResultTarget = array<f32, 2 * BQ * BK>;

var<workgroup> Ls: SgmLeftSource; // Q (BQ × DP) at 0, dO (BQ × DVP) at OO, dS (BQ × BK) at SO
var<workgroup> Rs: SgmRightSource; // K (BK × DP) at 0, V (BK × DVP) at VO; transposed views as needed
var<workgroup> Ss: SgmResultTarget; // S (BQ × BK) at 0, dP at PO; dq's way out
var<workgroup> rowLse: array<f32, BQ>;
var<workgroup> rowDelta: array<f32, BQ>;

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
  for (var e = li; e < opaque(BQ * DVP); e += WG) {
    let i = q0 + e / DVP;
    let d = e % DVP;
    var x = 0.0;
    if (i < p.T && d < DV) { x = dout[((b * p.T + i) * p.H + h) * DV + d]; }
    Ls[OO + e] = toF16(x);
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    let i = q0 + r;
    var dl = 0.0;
    var L = 0.0;
    if (i < p.T) {
      let ob = ((b * p.T + i) * p.H + h) * DV;
      for (var e = 0u; e < opaque(DV); e++) { dl = fma(dout[ob + e], o[ob + e], dl); }
      L = stats[2u * ((b * p.H + h) * p.T + i)];
      stats[2u * ((b * p.H + h) * p.T + i) + 1u] = dl;
    }
    rowDelta[r] = dl;
    rowLse[r] = L;
  }
  let start = queryTile(b, q0, li);
  let kEnd = queryTileEnd(q0);
  let rows = sg * SGM_M;

  var acc: array<SgmResult, NQ>;
  for (var x = 0u; x < sgmLoop(NQ); x++) { acc[x] = sgmZero(); }
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
      if (j < p.Tk && d < DV) { x = v[((b * p.Tk + j) * p.KV + g) * DV + d]; }
      Rs[VO + e] = toF16(x);
    }
    workgroupBarrier();
    // S = Q·Kᵀ (u = 0) and dP = dO·Vᵀ (u = 1), in one loop: one copy of each operation (the
    // emulation's copies are what lavapipe spends its compile time on)
    for (var u = 0u; u < sgmLoop(2u); u++) {
      let w = select(DP, DVP, u == 1u); // the product's inner size, and both operands' stride
      for (var n = 0u; n < sgmLoop(BK / SGM_N); n++) {
        var s = sgmZero();
        for (var t = 0u; t < w / SGM_K; t++) {
          let left = sgmLoadLeft(&Ls, select(0u, OO, u == 1u) + rows * w + t * SGM_K, w, false);
          let right = sgmLoadRight(&Rs, select(0u, VO, u == 1u) + n * SGM_N * w + t * SGM_K, w, true);
          s = sgmMultiplyAccumulate(left, right, s);
        }
        sgmStoreResult(&Ss, u * PO + rows * BK + n * SGM_N, s, BK, false);
      }
    }
    workgroupBarrier();
    // scale·dS, 0 where the query does not see the key
    for (var e = li; e < opaque(BQ * BK); e += WG) {
      let r = e / BK;
      var ds = 0.0;
      if (sees(r, q0 + r, kt + e % BK)) {
        ds = exp(Ss[e] * p.scale - rowLse[r]) * (Ss[PO + e] - rowDelta[r]) * p.scale;
      }
      Ls[SO + e] = toF16(ds);
    }
    workgroupBarrier();
    // dQ += dS·K
    for (var x = 0u; x < sgmLoop(NQ); x++) {
      for (var t = 0u; t < sgmLoop(BK / SGM_K); t++) {
        let left = sgmLoadLeft(&Ls, SO + rows * BK + t * SGM_K, BK, false);
        let right = sgmLoadRight(&Rs, t * SGM_K * DP + x * SGM_N, DP, false);
        acc[x] = sgmMultiplyAccumulate(left, right, acc[x]);
      }
    }
    workgroupBarrier();
  }
  // dq out, 2·BK / SGM_N matrices at a time through Ss (rows of 2·BK)
  for (var x0 = 0u; x0 < sgmLoop(NQ); x0 += 2u * BK / SGM_N) {
    for (var x = x0; x < sgmLoop(min(x0 + 2u * BK / SGM_N, NQ)); x++) {
      sgmStoreResult(&Ss, rows * 2u * BK + (x - x0) * SGM_N, acc[x], 2u * BK, false);
    }
    workgroupBarrier();
    for (var e = li; e < opaque(2u * BQ * BK); e += WG) {
      let i = q0 + e / (2u * BK);
      let d = x0 * SGM_N + e % (2u * BK);
      if (i < p.T && d < D) { dq[((b * p.T + i) * p.H + h) * D + d] = Ss[e]; }
    }
    workgroupBarrier();
  }
}
