// embedding: token rows of the table W (V, C): out[t, c] = W[ids[t], c]. Its gradient is
// embedding_backward_sort.wgsl then embedding_backward.wgsl.
// Bindings: 0 ids (read, (N) i32), 1 W (read, (V, C)), 2 out (read_write, (N, C)), 3 uniform Params.
// Grid: strideGrid(N * C, WG).
// CPU reference: embeddingRef in lib/ops/embedding.ts.

struct Params { N: u32, C: u32, V: u32 }

@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var e = gid.x; e < p.N * p.C; e += nw.x * WG) {
    let t = e / p.C;
    let c = e % p.C;
    out[e] = W[u32(ids[t]) * p.C + c];
  }
}
