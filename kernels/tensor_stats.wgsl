// tensor_stats: per-workgroup partial statistics of an f32 chunk, combined in f64 on the host:
//   part[w] = [Σx, Σx², min, max, #NaN, #Inf] over the finite / non-finite elements of its share.
// Bindings: 0 x (read, (n)), 1 part (read_write, (W, 6)), 2 uniform Params.
// Grid: (W); each workgroup strides over the chunk by W·256.
// CPU reference: statsRef in lib/ops/tensor_stats.ts.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) li: u32) {
  var a = 0.0; var b = 0.0; var lo = 3.4028234663852886e38; var hi = -3.4028234663852886e38; var cn = 0.0; var ci = 0.0;
  for (var i = wg.x * WG + li; i < p.n; i += nw.x * WG) {
    let v = x[i];
    let bits = bitcast<u32>(v);
    let special = (bits & 0x7f800000u) == 0x7f800000u;
    if (special) {
      if ((bits & 0x007fffffu) != 0u) { cn += 1.0; } else { ci += 1.0; }
    } else {
      a += v; b = fma(v, v, b); lo = min(lo, v); hi = max(hi, v);
    }
  }
  let sum = workgroupSum(a, li);
  let sumSq = workgroupSum(b, li);
  let least = workgroupMin(lo, li);
  let most = workgroupMax(hi, li);
  let nans = workgroupSum(cn, li);
  let infs = workgroupSum(ci, li);
  if (li == 0u) {
    let o = wg.x * 6u;
    part[o] = sum; part[o + 1u] = sumSq; part[o + 2u] = least; part[o + 3u] = most; part[o + 4u] = nans; part[o + 5u] = infs;
  }
}
