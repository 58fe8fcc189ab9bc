// embedding: token rows of the table W (V, C): out[t, c] = W[ids[t], c]. Its gradient is
// embedding_backward_sort.wgsl then embedding_backward.wgsl.
// A table over one storage binding is bound in windows of rows [v0, v1), one dispatch each: a dispatch
// writes the tokens whose id is in its rows; W's window starts at element wFirst of the table. An id
// outside [0, V) gives a zero row (written by the dispatch with v0 = 0).
// Half-width tables (bf16/f16 weights kept as stored, two per word; common/half_weights.wgsl) widen
// each value exactly as it is copied, HALF picking the format; wFirst then counts 16-bit elements.
// Bindings: 0 ids (read, (N) i32), 1 W (read, (V, C) as u32 words, or a window of it), 2 out
//   (read_write, (N, C)), 3 uniform Params.
// Grid: strideGrid(N * C, WG).
// CPU reference: embeddingRef in lib/ops/embedding.ts.

struct Params { N: u32, C: u32, V: u32, v0: u32, v1: u32, wFirst: u32 }

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 64u;
// #include "common/half_weights.wgsl"

fn loadW(i: u32) -> f32 {
  if (HALF == 0u) { return bitcast<f32>(W[i]); }
  return widenHalf(W[i >> 1u], (i & 1u) == 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var e = gid.x; e < p.N * p.C; e += nw.x * WG) {
    let t = e / p.C;
    let c = e % p.C;
    let v = u32(ids[t]);
    if (v >= p.V) {
      if (p.v0 == 0u) { out[e] = 0.0; }
      continue;
    }
    if (v < p.v0 || v >= p.v1) { continue; }
    out[e] = loadW(v * p.C + c - p.wFirst);
  }
}
