// embedding_backward_sort: the token positions grouped by id, for the embedding gradient's gather
// (embedding_backward.wgsl). A bitonic sort (Batcher 1968) of the pairs (key, pos) = (u32(ids[t]), t),
// t < N, padded to M = 2^m pairs with (0xffffffff, t) for N ≤ t < M, into ascending (key, pos) order:
// each id's positions end up contiguous and ascending. Every pair is distinct (pos is), and a sorting
// network does the same compare-exchanges whatever the scheduling, so the output is one fixed
// permutation: no atomics anywhere. Padding sorts after every real pair (an id of -1 is also
// 0xffffffff, but its t < N), so the first N sorted pairs are the real tokens.
//   LOCAL: each workgroup loads TILE consecutive pairs (from ids when p.k0 == 2, the first pass; from
//          keys/pos otherwise) into workgroup memory and runs, for k = k0, 2·k0, ..., k1, the steps
//          j = min(k, TILE) / 2, ..., 1 of merge size k; the first pass (k0 = 2, k1 = TILE) sorts each
//          tile, later ones (k0 = k1 = k > TILE) finish a merge whose steps j ≥ TILE ran globally.
//   !LOCAL: one compare-exchange step (k, j), j ≥ TILE, over all M pairs: pairs (i, i + j) with
//          bit j of i clear, ascending where bit k of i is clear.
// Bindings: 0 ids (read, (N) i32), 1 keys (read_write, (M) u32), 2 pos (read_write, (M) u32),
//   3 uniform Params (N, M, k0, k1: LOCAL's merge sizes; !LOCAL's k and j in k0 and k1).
// Grid: LOCAL (M / min(M, TILE)); !LOCAL strideGrid(M / 2, WG). Launch sequence: embeddingBackward in
//   lib/ops/embedding.ts.
// CPU reference: none of its own; embeddingBackwardRef checks the gradient it feeds.

struct Params { N: u32, M: u32, k0: u32, k1: u32 }

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> pos: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const LOCAL: bool = true;
// pairs per workgroup in LOCAL (a power of two); two u32 arrays of TILE fill WebGPU's guaranteed 16 KiB
// (the launch sets min(M, 2048))
const TILE: u32 = 2048u;
override WG: u32 = 256u;

var<workgroup> sk: array<u32, TILE>;
var<workgroup> sp: array<u32, TILE>;

// (ka, pa) after (kb, pb)?
fn after(ka: u32, pa: u32, kb: u32, pb: u32) -> bool {
  return ka > kb || (ka == kb && pa > pb);
}

// the lower index of compare-exchange pair q at step j (a power of two): q with a 0 bit inserted at
// j's bit
fn lower(q: u32, j: u32) -> u32 {
  return ((q & ~(j - 1u)) << 1u) | (q & (j - 1u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nw: vec3u) {
  if (LOCAL) {
    let n = min(p.M, TILE);
    let base = wid.x * n;
    for (var e = li; e < n; e += WG) {
      let i = base + e;
      if (p.k0 == 2u) {
        sk[e] = select(0xffffffffu, u32(ids[min(i, p.N - 1u)]), i < p.N);
        sp[e] = i;
      } else {
        sk[e] = keys[i];
        sp[e] = pos[i];
      }
    }
    workgroupBarrier();
    for (var k = p.k0; k <= p.k1; k <<= 1u) {
      for (var j = min(k, n) >> 1u; j > 0u; j >>= 1u) {
        // n / 2 compare-exchanges per step
        for (var q = li; q < n / 2u; q += WG) {
          let a = lower(q, j);
          let b = a + j;
          let up = ((base + a) & k) == 0u;
          if (after(sk[a], sp[a], sk[b], sp[b]) == up) {
            let tk = sk[a];
            let tp = sp[a];
            sk[a] = sk[b];
            sp[a] = sp[b];
            sk[b] = tk;
            sp[b] = tp;
          }
        }
        workgroupBarrier();
      }
    }
    for (var e = li; e < n; e += WG) {
      keys[base + e] = sk[e];
      pos[base + e] = sp[e];
    }
  } else {
    let k = p.k0;
    let j = p.k1;
    for (var q = wid.x * WG + li; q < p.M / 2u; q += nw.x * WG) {
      let a = lower(q, j);
      let b = a + j;
      let ka = keys[a];
      let pa = pos[a];
      let kb = keys[b];
      let pb = pos[b];
      if (after(ka, pa, kb, pb) == ((a & k) == 0u)) {
        keys[a] = kb;
        pos[a] = pb;
        keys[b] = ka;
        pos[b] = pa;
      }
    }
  }
}
