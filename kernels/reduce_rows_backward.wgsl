// reduce_rows_backward: dx[r, c] = gradient of reduce_rows's OP, given dout (R).
//   OP 0 sum: dx[r, c] = dout[r]     OP 1 mean: dout[r] / C     OP 2 max: dout[r] where c == idx[r], else 0
// Bindings: 0 dout (read, (R)), 1 idx (read, (R), u32; read for max only), 2 dx (read_write, (R, C)),
//   3 uniform Params.
// Grid: (min(ceil(R*C/256), 4096)), grid-stride loop.
// CPU reference: reduceRowsBackwardRef in lib/ops/reduce_rows.ts.

struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<storage, read> dout: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const OP: u32 = 0u;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let n = p.R * p.C;
  let stride = nw.x * WG;
  for (var i = gid.x; i < n; i += stride) {
    let r = i / p.C;
    let c = i % p.C;
    if (OP == 0u) { dx[i] = dout[r]; }
    else if (OP == 1u) { dx[i] = dout[r] / f32(p.C); }
    else { dx[i] = select(0.0, dout[r], c == idx[r]); }
  }
}
