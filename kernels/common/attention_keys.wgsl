// Included by the training attention kernels (attention_forward, attention_backward_dq,
// attention_backward_dkv and their _sgmat twins): their scalars, and which keys a query sees, for a
// tile of BQ queries. Query i sees keys [lo_i, hi_i]: hi_i = qOffset + i (causal), lo_i = hi_i -
// pos[b, i] (a document starts where positions restart) raised to hi_i - window + 1 when window > 0
// (a sliding window, Mistral's: within a document the index distance hi_i - j is the position
// difference), the ranges attentionRef (lib/ops/attention.ts) walks. The includer declares BQ
// (queries per tile), BK (keys per tile), WG (its workgroup size), the binding pos and the uniform p
// (a Params, filled by scalars() in lib/ops/attention.ts).
struct Params { B: u32, T: u32, Tk: u32, H: u32, KV: u32, qOffset: u32, scale: f32, window: u32 }

var<workgroup> rowLo: array<u32, BQ>; // lo of each query of the tile; past T, 0xffffffff: it sees nothing
var<workgroup> tileStart: u32;

/**
 * n, as a loop bound llvmpipe cannot fold to a constant: it unrolls a loop of known trip count whole,
 * and a register tile's reduction loop unrolled 32 or 64 times costs seconds of compile time for no
 * run-time gain (measured: 3.0 s against 0.9 s for one forward). (Tk | n is n or more, so this is n.)
 */
fn opaque(n: u32) -> u32 {
  return min(n, p.Tk | n);
}

/** The first key query i of batch row b may see: its document's start, or its window's. */
fn keyLo(b: u32, i: u32) -> u32 {
  let hi = i32(p.qOffset + i);
  var lo = hi - pos[b * p.T + i];
  if (p.window > 0u) { lo = max(lo, hi - i32(p.window) + 1); }
  return u32(max(lo, 0));
}

/**
 * Fills rowLo for the queries q0..q0+BQ-1 and returns the start of the first key tile (of BK) any of
 * them sees, past Tk when none does. Every thread calls it: its one barrier makes rowLo visible and
 * the result workgroup-uniform, as a loop bound must be. (One barrier rather than an atomic min
 * between two: every barrier in a loop costs llvmpipe compile time.)
 */
fn queryTile(b: u32, q0: u32, li: u32) -> u32 {
  for (var r = li; r < opaque(BQ); r += WG) {
    var lo = 0xffffffffu;
    if (q0 + r < p.T) { lo = keyLo(b, q0 + r); }
    rowLo[r] = lo;
  }
  if (li == 0u) {
    var lo = 0xffffffffu;
    for (var i = q0; i < min(q0 + BQ, p.T); i++) { lo = min(lo, keyLo(b, i)); }
    tileStart = (lo / BK) * BK;
  }
  return workgroupUniformLoad(&tileStart);
}

/** One past the last key the queries q0..q0+BQ-1 see. */
fn queryTileEnd(q0: u32) -> u32 {
  return min(p.Tk, p.qOffset + min(p.T, q0 + BQ));
}

/** Whether row r of the tile (query i = q0 + r) sees key j; rowLo must be filled. */
fn sees(r: u32, i: u32, j: u32) -> bool {
  return j >= rowLo[r] && j <= p.qOffset + i && j < p.Tk;
}

/**
 * The columns [x, y) of the key tile kt..kt+BK-1 that row r (query i) sees, (0, 0) when none: loops
 * bounded by them, rather than a test per column, keep lavapipe's compile times short.
 */
fn seenColumns(r: u32, i: u32, kt: u32) -> vec2u {
  let x = min(max(rowLo[r], kt) - kt, BK);
  let y = max(min(min(p.qOffset + i + 1u, p.Tk), kt + BK), kt) - kt;
  return select(vec2u(0u, 0u), vec2u(x, y), x < y);
}

/** The first query tile (of BQ) that sees any of the keys k0..: queries before k0 - qOffset see none. */
fn firstQueryTile(k0: u32) -> u32 {
  if (k0 <= p.qOffset) { return 0u; }
  return ((k0 - p.qOffset) / BQ) * BQ;
}

/**
 * One past the last query that sees any of the keys k0..k0+BK-1: with a window, query i sees key j
 * only when qOffset + i < j + window, so the key-side kernels skip the query tiles beyond (O(T·window)
 * work rather than O(T²)).
 */
fn queryTilesEnd(k0: u32) -> u32 {
  if (p.window == 0u) { return p.T; }
  let e = k0 + BK + p.window - 1u;
  if (e <= p.qOffset) { return 0u; }
  return min(p.T, e - p.qOffset);
}
