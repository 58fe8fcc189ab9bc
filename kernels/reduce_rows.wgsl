// reduce_rows: out[r] = OP over c < C of x[r, c], one workgroup per row (tree reduction in workgroup memory).
//   OP 0: sum   OP 1: mean (sum / C)   OP 2: max (also writes the first argmax column to idx[r])
// Bindings: 0 x (read, (R, C)), 1 out (read_write, (R)), 2 idx (read_write, (R), u32; written for max only),
//   3 uniform Params.
// Grid: (min(R, 65535), ceil(R / 65535)); workgroup WG (a power of two).
// CPU reference: reduceRowsRef in lib/ops/reduce_rows.ts.

struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const OP: u32 = 0u;
const WG: u32 = 64u;

var<workgroup> sv: array<f32, WG>;
var<workgroup> si: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.R) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = r * p.C;
  var v: f32;
  var at: u32 = 0xffffffffu;
  if (OP == 2u) {
    v = -3.4028234663852886e38;
    for (var c = li; c < p.C; c += WG) {
      let xc = x[base + c];
      if (xc > v || at == 0xffffffffu) { v = xc; at = c; }
    }
  } else {
    v = 0.0;
    for (var c = li; c < p.C; c += WG) { v += x[base + c]; }
  }
  sv[li] = v;
  si[li] = at;
  workgroupBarrier();
  // argmax: pairs of (value, column), not a plain reduction (common/workgroup_reduce.wgsl sums f32s)
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      if (OP == 2u) {
        let o = sv[li + s];
        let oi = si[li + s];
        // ties go to the smaller column, so the argmax matches the CPU reference's first maximum
        if (oi != 0xffffffffu && (si[li] == 0xffffffffu || o > sv[li] || (o == sv[li] && oi < si[li]))) { sv[li] = o; si[li] = oi; }
      } else {
        sv[li] += sv[li + s];
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    if (OP == 1u) { out[r] = sv[0] / f32(p.C); } else { out[r] = sv[0]; }
    if (OP == 2u) { idx[r] = si[0]; }
  }
}
