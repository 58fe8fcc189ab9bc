// grad_norm: the global L2 norm of all gradients, in two deterministic passes.
//   PASS 0: partial[slot + w] = Σ over this workgroup's share of g[i]²   (one dispatch per tensor;
//           the tensor's workgroups write their own slots)
//   PASS 1: stats[0] = sqrt(Σ partial[0..P)) · invScale   (the true norm when the gradients carry a
//           loss scale), stats[1] = min(1, maxNorm / (stats[0] + 1e-6)) · invScale — what AdamW
//           multiplies every gradient by: the loss scale divided out and global-norm clipping
//           (Pascanu et al. 2013) applied; maxNorm <= 0 disables clipping.
//   A tensor over one storage binding goes in ranges of a multiple of W·256 elements, one dispatch each,
//   so every thread meets the same elements in the same order as in one dispatch: its running sum
//   goes to carry after a range (STORE_CARRY) and comes back before the next (LOAD_CARRY), and only
//   the last range reduces — the same bits as the unsplit pass.
// Bindings: 0 g (read, (n)), 1 partial (read_write, (P)), 2 stats (read_write, (2)),
//   3 carry (read_write, (W·256); any buffer unless a CARRY flag is set), 4 uniform Params.
// Grid: PASS 0 (W) with W = min(ceil(n / 256), 64); PASS 1 (1).
// CPU reference: gradNormRef in lib/optim/grad_norm.ts.

struct Params { n: u32, slot: u32, P: u32, maxNorm: f32, invScale: f32 }

@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> carry: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const PASS: u32 = 0u;
const LOAD_CARRY: bool = false;
const STORE_CARRY: bool = false;
const WG: u32 = 256u;
// #include "common/workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) li: u32) {
  var a = 0.0;
  if (PASS == 0u) {
    let t = wg.x * WG + li;
    if (LOAD_CARRY) { a = carry[t]; }
    for (var i = t; i < p.n; i += nw.x * WG) { let x = g[i]; a = fma(x, x, a); }
    if (STORE_CARRY) { carry[t] = a; return; }
  } else {
    for (var i = li; i < p.P; i += WG) { a += partial[i]; }
  }
  let total = workgroupSum(a, li);
  if (li == 0u) {
    if (PASS == 0u) {
      partial[p.slot + wg.x] = total;
    } else {
      let norm = sqrt(total) * p.invScale;
      stats[0] = norm;
      stats[1] = select(1.0, min(1.0, p.maxNorm / (norm + 1e-6)), p.maxNorm > 0.0) * p.invScale;
    }
  }
}
