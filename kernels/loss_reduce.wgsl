// loss_reduce: the mean of per-row losses over the rows that count.
//   stats[1] = 1 / (norm > 0 ? norm : count),  loss = Σ_i rowloss_i · stats[1]
// where count is the number of rows whose target is not IGNORE. One workgroup; stats[0] (dloss) is
// written by the caller before the backward.
// Bindings: 0 rowloss (read, (N)), 1 targets (read, (N) i32), 2 loss (read_write, (1)),
//   3 stats (read_write, (2)), 4 uniform Params. Grid: (1).
// CPU reference: crossEntropyRef in lib/ops/cross_entropy.ts.

struct Params { N: u32, V: u32, norm: f32, ignore: i32 }

@group(0) @binding(0) var<storage, read> rowloss: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 256u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  var a = 0.0;
  var n = 0.0;
  for (var i = li; i < p.N; i += WG) {
    a += rowloss[i];
    let t = targets[i];
    if (t != p.ignore && t >= 0 && u32(t) < p.V) { n += 1.0; }
  }
  let sum = workgroupSum(a, li);
  let count = workgroupSum(n, li);
  if (li == 0u) {
    var d = count;
    if (p.norm > 0.0) { d = p.norm; }
    let scale = select(0.0, 1.0 / d, d > 0.0);
    stats[1] = scale;
    loss[0] = sum * scale;
  }
}
