// attention_backward_dkv_sgmat: attention_backward_dkv on subgroup matrices (f16 operands, f32
// accumulation; native or emulated, see attention_forward_sgmat.wgsl). Each of SGM_SUBGROUPS
// subgroups owns SGM_M keys of kv head g; for every query head of its group and every tile of BQ
// queries that sees the block's keys:
//   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ   (SGM_M × BQ per subgroup, to workgroup memory)
//   Pᵀ = exp(scale·Sᵀ - lse), dSᵀ = Pᵀ (dPᵀ - delta) · scale   (a thread per element, f16)
//   dV += Pᵀ·dO, dK += dSᵀ·Q   (SGM_M × DVP and SGM_M × DP per subgroup, kept across query tiles)
// D and DV are padded with zero columns to DP and DVP (multiples of SGM_N and SGM_K).
// Bindings as attention_backward_dkv: 0 q, 1 k, 2 v, 3 pos, 4 do, 5 stats ((B, H, T, 2): lse,
//   delta) (read), 6 dk (read_write, (B, Tk, KV, D)), 7 dv (read_write, (B, Tk, KV, DV)), 8 Params.
// Grid: (ceil(Tk / BK), KV, B). CPU reference: attentionBackwardRef in lib/ops/attention.ts on
// f16-rounded inputs.
enable f16;

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
const DP: u32 = 64u; // D rounded up to a multiple of SGM_N and SGM_K
const DVP: u32 = 64u; // DV rounded up to a multiple of SGM_N and SGM_K
const SG: u32 = 2u; // subgroups
const BQ: u32 = 32u; // queries per tile, a multiple of SGM_N and SGM_K
// #include "common/attention_sgmat.wgsl"

const SGM_SUBGROUPS: u32 = SG;
const WG: u32 = SG * SGM_SUBGROUP_SIZE;
const BK: u32 = SG * SGM_M; // keys per workgroup
const NK: u32 = DP / SGM_N; // dk matrices per subgroup
const NV: u32 = DVP / SGM_N; // dv matrices per subgroup
// #include "common/attention_keys.wgsl"

const VO: u32 = BK * DP; // V's offset in Ls
const PO: u32 = VO + BK * DVP; // Pᵀ's offset in Ls
const SO: u32 = PO + BK * BQ; // dSᵀ's offset in Ls
const OO: u32 = BQ * DP; // dO's offset in Rs
const DPO: u32 = BK * BQ; // dPᵀ's offset in Ss
alias SgmLeftSource = array<f16, BK * DP + BK * DVP + 2 * BK * BQ>;
alias SgmRightSource = array<f16, BQ * DP + BQ * DVP>;
alias SgmResultTarget = array<f32, 2 * BK * BQ>;

var<workgroup> Ls: SgmLeftSource; // K (BK × DP) at 0, V (BK × DVP) at VO, Pᵀ and dSᵀ (BK × BQ) at PO, SO
var<workgroup> Rs: SgmRightSource; // Q (BQ × DP) at 0, dO (BQ × DVP) at OO; transposed views as needed
var<workgroup> Ss: SgmResultTarget; // Sᵀ (BK × BQ) at 0, dPᵀ at DPO; dk's and dv's way out
var<workgroup> colLse: array<f32, BQ>;
var<workgroup> colDelta: array<f32, BQ>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, inv: SgmInvocation) {
  let sg = sgmBegin(inv);
  let li = inv.index;
  let b = wg.z;
  let g = wg.y;
  let k0 = wg.x * BK;
  let group = p.H / p.KV;
  for (var e = li; e < opaque(BK * DP); e += WG) {
    let j = k0 + e / DP;
    let d = e % DP;
    var x = 0.0;
    if (j < p.Tk && d < D) { x = k[((b * p.Tk + j) * p.KV + g) * D + d]; }
    Ls[e] = toF16(x);
  }
  for (var e = li; e < opaque(BK * DVP); e += WG) {
    let j = k0 + e / DVP;
    let d = e % DVP;
    var x = 0.0;
    if (j < p.Tk && d < DV) { x = v[((b * p.Tk + j) * p.KV + g) * DV + d]; }
    Ls[VO + e] = toF16(x);
  }
  let rows = sg * SGM_M;

  var acc: array<SgmResult, NK + NV>; // dk's matrices, then dv's
  for (var x = 0u; x < sgmLoop(NK + NV); x++) { acc[x] = sgmZero(); }
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
      // previous tile's reads of Rs.
      if (queryTile(b, it, li) > k0) { continue; }
      for (var e = li; e < opaque(BQ * DP); e += WG) {
        let i = it + e / DP;
        let d = e % DP;
        var x = 0.0;
        if (i < p.T && d < D) { x = q[((b * p.T + i) * p.H + h) * D + d]; }
        Rs[e] = toF16(x);
      }
      for (var e = li; e < opaque(BQ * DVP); e += WG) {
        let i = it + e / DVP;
        let d = e % DVP;
        var x = 0.0;
        if (i < p.T && d < DV) { x = dout[((b * p.T + i) * p.H + h) * DV + d]; }
        Rs[OO + e] = toF16(x);
      }
      workgroupBarrier();
      // Sᵀ = K·Qᵀ (u = 0) and dPᵀ = V·dOᵀ (u = 1), in one loop: one copy of each operation (the
      // emulation's copies are what lavapipe spends its compile time on)
      for (var u = 0u; u < sgmLoop(2u); u++) {
        let w = select(DP, DVP, u == 1u); // the product's inner size, and both operands' stride
        for (var n = 0u; n < sgmLoop(BQ / SGM_N); n++) {
          var s = sgmZero();
          for (var t = 0u; t < w / SGM_K; t++) {
            let left = sgmLoadLeft(&Ls, select(0u, VO, u == 1u) + rows * w + t * SGM_K, w, false);
            let right = sgmLoadRight(&Rs, select(0u, OO, u == 1u) + n * SGM_N * w + t * SGM_K, w, true);
            s = sgmMultiplyAccumulate(left, right, s);
          }
          sgmStoreResult(&Ss, u * DPO + rows * BQ + n * SGM_N, s, BQ, false);
        }
      }
      workgroupBarrier();
      // Pᵀ and scale·dSᵀ, 0 where the query does not see the key
      for (var e = li; e < opaque(BK * BQ); e += WG) {
        let c = e % BQ;
        var pr = 0.0;
        var ds = 0.0;
        if (sees(c, it + c, k0 + e / BQ)) {
          pr = exp(Ss[e] * p.scale - colLse[c]);
          ds = pr * (Ss[DPO + e] - colDelta[c]) * p.scale;
        }
        Ls[PO + e] = toF16(pr);
        Ls[SO + e] = toF16(ds);
      }
      workgroupBarrier();
      // dK += dSᵀ·Q (acc[x], x < NK), dV += Pᵀ·dO (acc[NK + x])
      for (var x = 0u; x < sgmLoop(NK + NV); x++) {
        let isK = x < NK;
        let w = select(DVP, DP, isK); // the right operand's width
        let col = select(x - NK, x, isK) * SGM_N;
        for (var t = 0u; t < sgmLoop(BQ / SGM_K); t++) {
          let left = sgmLoadLeft(&Ls, select(PO, SO, isK) + rows * BQ + t * SGM_K, BQ, false);
          let right = sgmLoadRight(&Rs, select(OO, 0u, isK) + t * SGM_K * w + col, w, false);
          acc[x] = sgmMultiplyAccumulate(left, right, acc[x]);
        }
      }
    }
  }
  // dk and dv out, 2·BQ / SGM_N matrices at a time through Ss (rows of 2·BQ)
  let per = 2u * BQ / SGM_N;
  for (var x0 = 0u; x0 < sgmLoop(NK + NV); x0 += per) {
    workgroupBarrier();
    for (var x = x0; x < sgmLoop(min(x0 + per, NK + NV)); x++) {
      sgmStoreResult(&Ss, rows * 2u * BQ + (x - x0) * SGM_N, acc[x], 2u * BQ, false);
    }
    workgroupBarrier();
    for (var e = li; e < opaque(2u * BK * BQ); e += WG) {
      let j = k0 + e / (2u * BQ);
      let col = x0 * SGM_N + e % (2u * BQ); // dk's DP columns, then dv's DVP
      if (j < p.Tk) {
        if (col < D) {
          dk[((b * p.Tk + j) * p.KV + g) * D + col] = Ss[e];
        } else if (col >= DP && col - DP < DV && col < DP + DVP) {
          dv[((b * p.Tk + j) * p.KV + g) * DV + col - DP] = Ss[e];
        }
      }
    }
  }
}
