// matmul on subgroups: same contract as matmul.wgsl (C[b] = op(A[b])·op(B[b]), layouts, ACCUMULATE,
// bindings, Params), for adapters whose subgroups are SG = 8 lanes wide (Mesa lavapipe: a subgroup is
// one 256-bit SIMD register). lavapipe turns every storage load into a bounds-checked scalar load and
// gains little from workgroup memory (DESIGN.md), so loads are what we save: each lane loads one row of
// A's 8-row block and the others get it by subgroupShuffle (a register permute), while B's values are
// loaded once per lane and reused for all 8 rows.
// A subgroup computes an 8 × (SG·TN) block of C: rows row0..row0+7, columns col0 + lane + j*SG.
// Workgroup: 64 threads = 8 subgroups, arranged SUB_M (along M) × SUB_N (along N).
// Grid: (ceil(N/(SUB_N*SG*TN)), ceil(M/(SUB_M*8)), batch).
// CPU reference: matmulRef in lib/ops/matmul.ts.
enable subgroups;

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const SG: u32 = 8u;
const TM: u32 = 8u;
const TN: u32 = 4u;
const SUB_M: u32 = 4u;
const SUB_N: u32 = 2u;
const TRANS_A: bool = false;
const TRANS_B: bool = false;
const ACCUMULATE: bool = false;

fn loadA(off: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return A[off + k * p.M + m]; }
  return A[off + m * p.K + k];
}

fn loadB(off: u32, k: u32, n: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  if (TRANS_B) { return B[off + n * p.K + k]; }
  return B[off + k * p.N + n];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let sub = li / SG;
  let sm = sub / SUB_N;
  let sn = sub % SUB_N;
  let row0 = (wg.y * SUB_M + sm) * TM;
  let col0 = (wg.x * SUB_N + sn) * SG * TN;
  let offA = wg.z * p.strideA;
  let offB = wg.z * p.strideB;
  let offC = wg.z * p.strideC;
  var acc: array<f32, TM * TN>;
  var b: array<f32, TN>;
  let myRow = row0 + lane % TM;
  for (var k = 0u; k < p.K; k++) {
    let av = loadA(offA, myRow, k);
    for (var j = 0u; j < TN; j++) { b[j] = loadB(offB, k, col0 + lane + j * SG); }
    for (var i = 0u; i < TM; i++) {
      let ai = subgroupShuffle(av, i);
      for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(ai, b[j], acc[i * TN + j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = row0 + i;
    if (r >= p.M) { break; }
    for (var j = 0u; j < TN; j++) {
      let c = col0 + lane + j * SG;
      if (c < p.N) {
        let idx = offC + r * p.N + c;
        if (ACCUMULATE) { C[idx] += acc[i * TN + j]; } else { C[idx] = acc[i * TN + j]; }
      }
    }
  }
}
