// embedding: token rows of the table W (V, C).
//   FORWARD:  out[t, c] = W[ids[t], c]
//   backward: dW[v, c] += Σ_{t: ids[t] = v} dout[t, c] — one thread per channel walks the tokens in
//             order, so rows shared by several tokens are summed without atomics, deterministically
//             (dW must be zeroed or hold what to add to).
// Bindings: 0 ids (read, (N) i32), 1 src (read: W forward, dout backward), 2 dst (read_write: out
//   (N, C) forward, dW (V, C) backward), 3 uniform Params.
// Grid: forward strideGrid(N * C); backward (ceil(C / 64)).
// CPU reference: embeddingRef / embeddingBackwardRef in lib/ops/embedding.ts.

struct Params { N: u32, C: u32, V: u32 }

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const FORWARD: bool = true;
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  if (FORWARD) {
    for (var e = gid.x; e < p.N * p.C; e += nw.x * WG) {
      let t = e / p.C;
      let c = e % p.C;
      dst[e] = src[u32(ids[t]) * p.C + c];
    }
  } else {
    let c = gid.x;
    if (c >= p.C) { return; }
    for (var t = 0u; t < p.N; t++) {
      let row = u32(ids[t]);
      dst[row * p.C + c] += src[t * p.C + c];
    }
  }
}
