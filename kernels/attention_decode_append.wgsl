// attention_decode_append: each batch row's new vector (a key, a value, or a part of latent
// attention's cache row) into that row's next cache row, which sits wherever its sequence's slot is:
//   cache[at[b] * CW + OFF + c] = src[b * W + c]   for b < B, c < W
// One dispatch for the whole batch, where a copy per row would end the compute pass B times.
// Bindings: 0 src (read, (B, W)), 1 at (read, (B) u32: cache row), 2 cache (read_write, (rows, CW)),
//   3 Params.
// Grid: strideGrid(B · W).
// CPU reference: cacheAppendRef in lib/ops/attention.ts.

struct Params { B: u32, W: u32, CW: u32, OFF: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> at: array<u32>;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let total = p.B * p.W;
  for (var e = gid.x; e < total; e += nw.x * WG) {
    let b = e / p.W;
    cache[at[b] * p.CW + p.OFF + e % p.W] = src[e];
  }
}
