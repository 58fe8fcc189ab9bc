// Included by attention_forward and attention_backward_dq: a workgroup of BQ queries (one per thread)
// walks the tiles of BK keys its queries can see, each tile staged in workgroup memory. The includer
// declares D, DV, VS (the distance between two tokens' values in v), BQ, BK, the uniform p
// (B, T, Tk, H, KV, qOffset) and the bindings k, v and pos.
// Query i sees keys [lo_i, hi_i]: hi_i = qOffset + i (causal), lo_i = hi_i - pos[b, i] (a document
// starts where positions restart), the same ranges attentionRef (lib/ops/attention.ts) walks.
var<workgroup> Ks: array<f32, BK * D>;
var<workgroup> Vs: array<f32, BK * DV>;
var<workgroup> blockLo: atomic<u32>;
var<workgroup> blockStart: u32;

/** The first key query i of batch row b may see: its document's start. */
fn keyLo(b: u32, i: u32) -> u32 {
  return u32(max(i32(p.qOffset + i) - pos[b * p.T + i], 0));
}

/**
 * The first key tile any query of the workgroup needs (lo: this thread's keyLo, when valid). Every
 * thread calls it: it holds barriers, and its result is workgroup-uniform, as a loop bound must be.
 */
fn blockKeyStart(lo: u32, valid: bool, li: u32) -> u32 {
  if (li == 0u) { atomicStore(&blockLo, 0xffffffffu); }
  workgroupBarrier();
  if (valid) { atomicMin(&blockLo, lo); }
  workgroupBarrier();
  if (li == 0u) { blockStart = (atomicLoad(&blockLo) / BK) * BK; }
  return workgroupUniformLoad(&blockStart);
}

/** One past the last key the workgroup's queries (block wx) may see. */
fn blockKeyEnd(wx: u32) -> u32 {
  return min(p.Tk, p.qOffset + min(p.T, (wx + 1u) * BQ));
}

/** Keys kt..kt+BK-1 of kv head g into Ks, their values into Vs (zeros past Tk); every thread calls it. */
fn loadKeyTile(b: u32, g: u32, kt: u32, li: u32) {
  for (var e = li; e < BK * D; e += BQ) {
    let j = kt + e / D;
    var kv = 0.0;
    if (j < p.Tk) { kv = k[((b * p.Tk + j) * p.KV + g) * D + e % D]; }
    Ks[e] = kv;
  }
  for (var e = li; e < BK * DV; e += BQ) {
    let j = kt + e / DV;
    var vv = 0.0;
    if (j < p.Tk) { vv = v[((b * p.Tk + j) * p.KV + g) * VS + e % DV]; }
    Vs[e] = vv;
  }
  workgroupBarrier();
}
