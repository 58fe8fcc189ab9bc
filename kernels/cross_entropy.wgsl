// cross_entropy: fused softmax + loss over the vocabulary, one workgroup per row of logits z (N, V).
//   MODE 0, loss:        lse = log Σ_v exp(z_v);  loss_i = lse - (1-ε) z_t - (ε/V) Σ_v z_v
//                        (label smoothing ε, Szegedy et al. 2016); rows whose target is IGNORE give 0
//   MODE 1, loss grad:   z_v ← (softmax_v - (1-ε)[v = t] - ε/V) · g, g = dloss · scale (from stats)
//   MODE 2, log-prob:    out_i = z_t - lse (0 for IGNORE)
//   MODE 3, log-prob grad: z_v ← dout_i ([v = t] - softmax_v)
// The gradients overwrite z in place: training never holds a second (N, V) tensor.
// Bindings: 0 targets (read, (N) i32), 1 lse (read_write, (N)), 2 z (read_write, (N, V)),
//   3 rowvals (read_write, (N): row losses / log-probs forward, dout for MODE 3),
//   4 stats (read, [dloss, scale] for MODE 1), 5 uniform Params.
// Logits over one storage binding go in windows of rows [row0, N), one dispatch each (z's window starts
// at element zFirst of the logits; the unsplit dispatch has row0 = 0, zFirst = 0): rows are independent,
// so the results are the same bits.
// Grid: rowGrid(N - row0).
// CPU reference: crossEntropyRef / logprobsRef in lib/ops/cross_entropy.ts.

struct Params { N: u32, V: u32, smoothing: f32, ignore: i32, row0: u32, zFirst: u32 }

@group(0) @binding(0) var<storage, read> targets: array<i32>;
@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> rowvals: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const MODE: u32 = 0u;
const WG: u32 = 128u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = p.row0 + wg.x + wg.y * 65535u;
  if (r >= p.N) { return; }
  let base = r * p.V - p.zFirst;
  let t = targets[r];
  let ignored = t == p.ignore || t < 0 || u32(t) >= p.V;
  if (MODE == 0u || MODE == 2u) {
    var m = -3.4028234663852886e38;
    for (var v = li; v < p.V; v += WG) { m = max(m, z[base + v]); }
    let mx = workgroupMax(m, li);
    var s = 0.0;
    var sz = 0.0;
    for (var v = li; v < p.V; v += WG) { let x = z[base + v]; s += exp(x - mx); sz += x; }
    let se = workgroupSum(s, li);
    let zsum = workgroupSum(sz, li);
    if (li == 0u) {
      let l = mx + log(se);
      lse[r] = l;
      if (ignored) { rowvals[r] = 0.0; }
      else if (MODE == 0u) { rowvals[r] = l - (1.0 - p.smoothing) * z[base + u32(t)] - p.smoothing / f32(p.V) * zsum; }
      else { rowvals[r] = z[base + u32(t)] - l; }
    }
  } else {
    let l = lse[r];
    var g: f32;
    if (MODE == 1u) { g = stats[0] * stats[1]; } else { g = rowvals[r]; }
    for (var v = li; v < p.V; v += WG) {
      let pr = exp(z[base + v] - l);
      var d: f32;
      let hit = select(0.0, 1.0, i32(v) == t);
      if (ignored) { d = 0.0; }
      else if (MODE == 1u) { d = (pr - (1.0 - p.smoothing) * hit - p.smoothing / f32(p.V)) * g; }
      else { d = g * (hit - pr); }
      z[base + v] = d;
    }
  }
}
