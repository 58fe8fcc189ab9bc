// moe_matmul: the grouped expert products of a mixture-of-experts layer, one dispatch over every
// expert: row r of the plan (moe_plan.wgsl; R = N·K rows sorted by expert) belongs to expert
// e(r) = experts[rows[r]], and expert e's rows are offsets[e] .. offsets[e + 1].
//   MODE 0 (forward, y = x·Wᵀ):   out[r, p] = Σ_q a[r, q] · w[e(r), p, q]     w: (E, P, Q)
//   MODE 1 (input gradient):       out[r, p] = Σ_q a[r, q] · w[e(r), q, p]     w: (E, Q, P)
//   MODE 2 (weight gradient):      out[e, p, q] = Σ_{r of e} a[r, p] · w[r, q] a: (R, P), w: (R, Q)
// Every sum runs in a fixed order (q, or the expert's rows in order), so results are deterministic.
// One thread per output element, the products read straight from storage: the MoE layers of the
// tiny models we train are a small share of a step; a tiled variant is the next step for big ones.
// Bindings: 0 a (read, f32), 1 w (read, f32), 2 experts (read, u32 (R)), 3 rows (read, u32 (R)),
//   4 offsets (read, u32 (E + 1)), 5 out (read_write, f32), 6 uniform Params.
// Grid: strideGrid(outputs).
// CPU reference: groupedMatmulRef in lib/ops/moe.ts.

struct Params { R: u32, P: u32, Q: u32, E: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> experts: array<u32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read> offsets: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const MODE: u32 = 0u;
override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let P = p.P;
  let Q = p.Q;
  let n = select(p.R * P, p.E * P * Q, MODE == 2u);
  for (var i = gid.x; i < n; i += nw.x * WG) {
    var s = 0.0;
    if (MODE == 2u) {
      let e = i / (P * Q);
      let pp = (i / Q) % P;
      let q = i % Q;
      for (var r = offsets[e]; r < offsets[e + 1u]; r++) { s += a[r * P + pp] * w[r * Q + q]; }
    } else {
      let r = i / P;
      let pp = i % P;
      let e = experts[rows[r]];
      let we = e * P * Q;
      for (var q = 0u; q < Q; q++) {
        let wv = select(w[we + q * P + pp], w[we + pp * Q + q], MODE == 0u);
        s += a[r * Q + q] * wv;
      }
    }
    out[i] = s;
  }
}
