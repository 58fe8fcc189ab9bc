// attention_backward_dq: the query side of flash attention's backward (Dao 2023, FlashAttention-2),
// recomputing probabilities from the forward's log-sum-exp:
//   P_ij = exp(scale·q_i·k_j - lse_i),  dP_ij = dO_i·v_j,  delta_i = dO_i·O_i,
//   dS_ij = P_ij (dP_ij - delta_i),     dq_i = scale Σ_j dS_ij k_j
// and writes delta for attention_backward_dkv. Same key ranges and grid as attention_forward, and the
// same register tiles: S and dP (BQ×BK) with TR rows × TC keys per thread, then dQ += dS·K (BQ×D)
// with TR rows × TD columns per thread, kept across key tiles; no thread holds a head-dim row.
// Bindings: 0 q, 1 k, 2 v, 3 pos, 4 o, 5 do (read; shapes as in attention_forward; o, do (B, T, H, DV)),
//   6 stats (read_write, (B, H, T, 2): the forward's lse in, delta out; one binding for both keeps
//   the kernel within WebGPU's default of 8 storage buffers), 7 dq (read_write, (B, T, H, D)), 8 Params.
// Grid: (ceil(T / BQ), H, B); workgroup WG = RT·NDG threads. The twin on subgroup matrices is
// attention_backward_dq_sgmat.wgsl. CPU reference: attentionBackwardRef in lib/ops/attention.ts.

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
const RT: u32 = 8u; // row phases: threads that share a column block
const TR: u32 = 4u; // rows per thread
const BK: u32 = 16u; // keys per tile
const TC: u32 = 4u; // score columns per thread
const TD: u32 = 8u; // dq columns per thread
const NDG: u32 = 8u; // dq column blocks: NDG·TD >= D
const BQ: u32 = RT * TR;
const WG: u32 = RT * NDG;
const DP: u32 = NDG * TD; // D padded with zero rows of KsT
// #include "common/attention_keys.wgsl"

var<workgroup> QsT: array<f32, D * BQ>; // QsT[d * BQ + r]
var<workgroup> OsT: array<f32, DV * BQ>; // dO, OsT[e * BQ + r]
var<workgroup> KsT: array<f32, DP * BK>; // KsT[d * BK + c]
var<workgroup> VsT: array<f32, DV * BK>; // VsT[e * BK + c]
var<workgroup> dSsT: array<f32, BK * BQ>; // dSsT[c * BQ + r] = scale · dS
var<workgroup> rowLse: array<f32, BQ>;
var<workgroup> rowDelta: array<f32, BQ>;

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
  for (var e = li; e < opaque(BQ * DV); e += WG) {
    let r = e / DV;
    let i = q0 + r;
    var x = 0.0;
    if (i < p.T) { x = dout[((b * p.T + i) * p.H + h) * DV + e % DV]; }
    OsT[(e % DV) * BQ + r] = x;
  }
  for (var r = li; r < opaque(BQ); r += WG) {
    let i = q0 + r;
    var dl = 0.0;
    var L = 0.0;
    if (i < p.T) {
      let ob = ((b * p.T + i) * p.H + h) * DV;
      for (var e = 0u; e < DV; e++) { dl = fma(dout[ob + e], o[ob + e], dl); }
      L = stats[2u * ((b * p.H + h) * p.T + i)];
      stats[2u * ((b * p.H + h) * p.T + i) + 1u] = dl;
    }
    rowDelta[r] = dl;
    rowLse[r] = L;
  }
  let start = queryTile(b, q0, li);
  let kEnd = queryTileEnd(q0);

  let ph = li % RT;
  let dg = li / RT;
  var acc: array<f32, TR * TD>;
  for (var x = 0u; x < TR * TD; x++) { acc[x] = 0.0; }
  for (var kt = start; kt < kEnd; kt += BK) {
    for (var e = li; e < opaque(BK * DP); e += WG) {
      let c = e / DP;
      let d = e % DP;
      let j = kt + c;
      var x = 0.0;
      if (j < p.Tk && d < D) { x = k[((b * p.Tk + j) * p.KV + g) * D + d]; }
      KsT[d * BK + c] = x;
    }
    for (var e = li; e < opaque(BK * DV); e += WG) {
      let c = e / DV;
      let j = kt + c;
      var x = 0.0;
      if (j < p.Tk) { x = v[((b * p.Tk + j) * p.KV + g) * DV + e % DV]; }
      VsT[(e % DV) * BK + c] = x;
    }
    workgroupBarrier();
    // S = Q·Kᵀ and dP = dO·Vᵀ, then scale·dS where the query sees the key, else 0
    for (var task = li; task < opaque(RT * (BK / TC)); task += WG) {
      let tp = task % RT;
      let c0 = (task / RT) * TC;
      var s: array<f32, TR * TC>;
      var dp: array<f32, TR * TC>;
      for (var x = 0u; x < TR * TC; x++) {
        s[x] = 0.0;
        dp[x] = 0.0;
      }
      for (var d = 0u; d < opaque(D); d++) {
        var qd: array<f32, TR>;
        for (var a = 0u; a < TR; a++) { qd[a] = QsT[d * BQ + tp + RT * a]; }
        for (var c = 0u; c < TC; c++) {
          let kd = KsT[d * BK + c0 + c];
          for (var a = 0u; a < TR; a++) { s[a * TC + c] = fma(qd[a], kd, s[a * TC + c]); }
        }
      }
      for (var e = 0u; e < opaque(DV); e++) {
        var od: array<f32, TR>;
        for (var a = 0u; a < TR; a++) { od[a] = OsT[e * BQ + tp + RT * a]; }
        for (var c = 0u; c < TC; c++) {
          let ve = VsT[e * BK + c0 + c];
          for (var a = 0u; a < TR; a++) { dp[a * TC + c] = fma(od[a], ve, dp[a * TC + c]); }
        }
      }
      for (var a = 0u; a < TR; a++) {
        let r = tp + RT * a;
        let cs = seenColumns(r, q0 + r, kt);
        let L = rowLse[r];
        let dl = rowDelta[r];
        for (var c = 0u; c < TC; c++) {
          let pr = exp(s[a * TC + c] * p.scale - L);
          let seen = c0 + c >= cs.x && c0 + c < cs.y;
          dSsT[(c0 + c) * BQ + r] = select(0.0, pr * (dp[a * TC + c] - dl) * p.scale, seen);
        }
      }
    }
    workgroupBarrier();
    // dQ += dS·K
    for (var c = 0u; c < opaque(BK); c++) {
      var dsc: array<f32, TR>;
      for (var a = 0u; a < TR; a++) { dsc[a] = dSsT[c * BQ + ph + RT * a]; }
      for (var x = 0u; x < TD; x++) {
        let kd = KsT[(dg * TD + x) * BK + c];
        for (var a = 0u; a < TR; a++) { acc[a * TD + x] = fma(dsc[a], kd, acc[a * TD + x]); }
      }
    }
    workgroupBarrier();
  }
  for (var a = 0u; a < TR; a++) {
    let i = q0 + ph + RT * a;
    if (i < p.T) {
      let qb = ((b * p.T + i) * p.H + h) * D;
      for (var x = 0u; x < TD; x++) {
        let d = dg * TD + x;
        if (DP == D || d < D) { dq[qb + d] = acc[a * TD + x]; }
      }
    }
  }
}
