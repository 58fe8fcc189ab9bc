// embedding_backward: the embedding table's gradient, gathered row by row from the token positions
// sorted by id (embedding_backward_sort.wgsl, embedding_backward_rows.wgsl):
//   dW[v, c] = Σ_{t: ids[t] = v} dout[t, c], summed in f32 from 0 in ascending t, one term at a time,
// so an id no token has gets a zero row, and the result does not depend on the scheduling: each dW
// element is written by one thread, which adds its terms in that fixed order (no float atomics).
// dW is overwritten whole. A thread sums LANES adjacent channels (4 when C is a multiple of 4: fewer,
// wider loads, the same additions per channel).
// Bindings: 0 start (read, (V + 1) u32), 1 pos (read, (M) u32: token positions sorted by id), 2 dout
//   (read, (N, C)), 3 dW (read_write, (V, C)), 4 uniform Params.
// A dW over one storage binding is written in windows of rows [v0, v1), one dispatch each; dW's window
// starts at element dFirst of the table (the unsplit dispatch: v0 = 0, v1 = V, dFirst = 0).
// Grid: (channel blocks, ceil((v1 - v0) / ROWS) folded into y and z by 65535): workgroup (x, y, z) does rows
//   v0 + ROWS·(y + 65535·z) + 0..ROWS-1, channel groups x·WG + lane stepping by (channel blocks)·WG, so any
//   number of channel blocks ≥ 1 covers C.
// CPU reference: embeddingBackwardRef in lib/ops/embedding.ts (the same order, so equal bit for bit).

struct Params { C: u32, v0: u32, v1: u32, dFirst: u32 }

@group(0) @binding(0) var<storage, read> start: array<u32>;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dW: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const LANES: u32 = 4u;
// rows per workgroup: a few, so that a vocabulary of mostly unused ids is not one workgroup each
const ROWS: u32 = 8u;
override WG: u32 = 32u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nw: vec3u) {
  let groups = p.C / LANES;
  for (var r = 0u; r < ROWS; r++) {
    let v = p.v0 + (wid.y + wid.z * 65535u) * ROWS + r;
    if (v >= p.v1) { return; }
    let lo = start[v];
    let hi = start[v + 1u];
    for (var g = wid.x * WG + li; g < groups; g += nw.x * WG) {
      let c = g * LANES;
      if (LANES == 4u) {
        var acc = vec4f();
        for (var i = lo; i < hi; i++) {
          let b = pos[i] * p.C + c;
          acc += vec4f(dout[b], dout[b + 1u], dout[b + 2u], dout[b + 3u]);
        }
        let o = v * p.C + c - p.dFirst;
        dW[o] = acc.x;
        dW[o + 1u] = acc.y;
        dW[o + 2u] = acc.z;
        dW[o + 3u] = acc.w;
      } else {
        var acc = 0.0;
        for (var i = lo; i < hi; i++) { acc += dout[pos[i] * p.C + c]; }
        dW[v * p.C + c - p.dFirst] = acc;
      }
    }
  }
}
