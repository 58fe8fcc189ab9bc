// attention_decode: generation's decoding step for a batch of sequences of different lengths. Row b of
// the batch holds one new query per head and attends over its own sequence's cached keys: the span of
// cache rows first_b .. first_b + count_b - 1 (the new key already stored last). Nothing is padded and
// no row reads another's keys, so a sequence's result is the same in any batch, at any slot. With a
// sliding window (p.window > 0, Mistral's) the query, at the span's last position, sees only the
// span's last `window` rows: key j is visible when (count_b - 1) - j < window.
//   o[b, h] = Σ_j softmax_j(scale · q[b, h]·k[first_b + j, g]) v[first_b + j, g],  g = h / (H / KV)
// LATENT (multi-head latent attention, DeepSeek-V2 §2.1.3): a cache row is [latent (DV), RoPE key
// (D - DV)], shared by every head (KV = 1), and serves as key and, its latent part, as value. The
// query's no-RoPE part is mapped into latent space here, q_lat = W_UKᵀ q_nope (W_UK absorbed), and
// the output back out of it, o = W_UV o_lat (W_UV absorbed), both read in place from kv_b_proj: per-head
// products that a batched matmul could only do after moving the heads in front of the batch.
// Arithmetic: keys in tiles of WG from the span's start, one key per thread (its score: a sequential
// fma over D); the tile's max and sum by a fixed tree in workgroup memory; each thread carries DV / WG
// output channels (a few floats, never a head-dim array) through the online softmax (Milakov &
// Gimelshein 2018), adding the tile's keys in order. No step depends on the subgroup size.
// Bindings: 0 q (B, H, QW) (QW = D; latent: dn + D - DV), 1 k (rows, KV, D), 2 v (rows, KV, VS), first DV
//   of each used, 3 span (B, 2) u32 [first row, count], 4 wkv (H, DN + DO, DV): kv_b_proj, each head's
//   DN rows of W_UK then DO rows of W_UV (latent only; anything otherwise), 5 o (read_write,
//   (B, H, DO)) (DO = DV; latent: v_head_dim), 6 Params.
// Grid: (H, B); workgroup WG threads (a power of two).
// CPU reference: attentionDecodeRef in lib/ops/attention.ts.

struct Params { H: u32, KV: u32, scale: f32, window: u32 }

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> span: array<u32>;
@group(0) @binding(4) var<storage, read> wkv: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const D: u32 = 64u;
const DV: u32 = 64u;
const VS: u32 = 64u;
const QW: u32 = 64u;
const DN: u32 = 0u;
const DO: u32 = 64u;
const LATENT: bool = false;
const WG: u32 = 64u;
// output channels per thread: ceil(DV / WG)
const NDV: u32 = 1u;
// the f32 lowest: a score no key has, and exp(NEG - finite) = 0
const NEG: f32 = -3.4028234663852886e38;

var<workgroup> qs: array<f32, D>;
var<workgroup> ps: array<f32, WG>;
var<workgroup> red: array<f32, WG>;
var<workgroup> os: array<f32, DV>;

/** red[0] = max (MAX) or sum of red[0..WG); every thread calls it. */
fn reduce(li: u32, MAX: bool) {
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (li < w) {
      if (MAX) { red[li] = max(red[li], red[li + w]); } else { red[li] = red[li] + red[li + w]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  let b = wg.y;
  let g = h / (p.H / p.KV);
  var first = span[2u * b];
  var n = span[2u * b + 1u];
  if (p.window > 0u && n > p.window) {
    first += n - p.window;
    n = p.window;
  }
  let qb = (b * p.H + h) * QW;
  for (var e = li; e < D; e += WG) {
    if (LATENT && e < DV) {
      var s = 0.0;
      for (var d = 0u; d < DN; d++) { s = fma(q[qb + d], wkv[(h * (DN + DO) + d) * DV + e], s); }
      qs[e] = s;
    } else if (LATENT) {
      qs[e] = q[qb + DN + e - DV];
    } else {
      qs[e] = q[qb + e];
    }
  }
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, NDV>;
  for (var t0 = 0u; t0 < n; t0 += WG) {
    let j = t0 + li;
    var s = NEG;
    if (j < n) {
      let kb = ((first + j) * p.KV + g) * D;
      var x = 0.0;
      for (var d = 0u; d < D; d++) { x = fma(qs[d], k[kb + d], x); }
      s = x * p.scale;
    }
    red[li] = s;
    reduce(li, true);
    let mNew = max(m, red[0]);
    var e = 0.0;
    if (j < n) { e = exp(s - mNew); }
    ps[li] = e;
    // everyone has read red[0] before it is overwritten
    workgroupBarrier();
    red[li] = e;
    reduce(li, false);
    let corr = exp(m - mNew);
    l = l * corr + red[0];
    let cnt = min(WG, n - t0);
    for (var r = 0u; r < NDV; r++) {
      let d = li + r * WG;
      if (d < DV) {
        var a = acc[r] * corr;
        for (var kk = 0u; kk < cnt; kk++) { a = fma(ps[kk], v[((first + t0 + kk) * p.KV + g) * VS + d], a); }
        acc[r] = a;
      }
    }
    m = mNew;
    // ps and red are rewritten by the next tile
    workgroupBarrier();
  }
  let inv = 1.0 / l;
  let ob = (b * p.H + h) * DO;
  if (LATENT) {
    for (var r = 0u; r < NDV; r++) {
      let d = li + r * WG;
      if (d < DV) { os[d] = acc[r] * inv; }
    }
    workgroupBarrier();
    for (var f = li; f < DO; f += WG) {
      var s = 0.0;
      for (var e = 0u; e < DV; e++) { s = fma(os[e], wkv[(h * (DN + DO) + DN + f) * DV + e], s); }
      o[ob + f] = s;
    }
  } else {
    for (var r = 0u; r < NDV; r++) {
      let d = li + r * WG;
      if (d < DV) { o[ob + d] = acc[r] * inv; }
    }
  }
}
