// embedding_backward_rows: where each table row's tokens start among the positions sorted by id
// (embedding_backward_sort.wgsl), for the gather (embedding_backward.wgsl):
//   start[v] = the first i < N with keys[i] ≥ v (N when none), v = 0..V
// so row v's tokens are pos[start[v] .. start[v + 1]) (empty for an id no token has). A binary search
// per row: the sorted keys are ascending.
// Bindings: 0 keys (read, (M) u32: sorted ids, the first N real), 1 start (read_write, (V + 1) u32),
//   2 uniform Params.
// Grid: strideGrid(V + 1, WG).
// CPU reference: none of its own; embeddingBackwardRef checks the gradient it feeds.

struct Params { N: u32, V: u32 }

@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> start: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  for (var v = gid.x; v <= p.V; v += nw.x * WG) {
    var lo = 0u;
    var hi = p.N;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (keys[mid] < v) { lo = mid + 1u; } else { hi = mid; }
    }
    start[v] = lo;
  }
}
