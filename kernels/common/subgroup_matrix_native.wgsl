// Subgroup matrices, native: the few matrix operations a kernel is written against (see
// subgroup_matrix_emulate.wgsl for the same operations built from workgroup memory), mapped onto
// Dawn's chromium_experimental_subgroup_matrix builtins — tensor cores on NVIDIA through Vulkan's
// cooperative matrices. Spec: docs/dawn/features/subgroup_matrix.md in Dawn; the builtins take the
// layout as a template argument (`row_major` / `col_major`), the form Dawn no longer warns about.
//
// Included by lib/gpu/pipelines.ts for `SUBGROUP_MATRIX: "native"`. The including kernel declares:
//   SGM_SUBGROUPS   its number of subgroups (workgroup size = SGM_SUBGROUPS * SGM_SUBGROUP_SIZE)
//   SgmLeftSource, SgmRightSource, SgmResultTarget
//                   the workgroup arrays (f16, f16, f32) that matrices are loaded from and stored to
// and calls every operation in workgroup-uniform control flow (the emulation's barriers need it).
// The caller (lib/ops/_matmul_variants.ts) sets SGM_M/N/K to one of the adapter's f16→f32
// subgroup-matrix configs and SGM_SUBGROUP_SIZE to its subgroup size, which must not vary: a
// subgroup's share of the tile is fixed at compile time.
enable f16;
enable chromium_experimental_subgroup_matrix;
// Offsets derive from subgroup_id: uniform within a subgroup, which is what the hardware needs, but
// not across the workgroup, which is all Tint's analysis can prove.
diagnostic(off, chromium.subgroup_matrix_uniformity);

const SGM_M: u32 = 16u;
const SGM_N: u32 = 16u;
const SGM_K: u32 = 16u;
const SGM_SUBGROUP_SIZE: u32 = 32u;

// WGSL orders a subgroup matrix's size as <type, columns, rows>.
alias SgmLeft = subgroup_matrix_left<f16, SGM_K, SGM_M>; // M rows, K columns
alias SgmRight = subgroup_matrix_right<f16, SGM_N, SGM_K>; // K rows, N columns
alias SgmResult = subgroup_matrix_result<f32, SGM_N, SGM_M>; // M rows, N columns

struct SgmInvocation {
  @builtin(local_invocation_index) index: u32,
  @builtin(subgroup_id) subgroup: u32,
}

/** Call first; returns the invocation's subgroup within the workgroup. */
fn sgmBegin(inv: SgmInvocation) -> u32 {
  return inv.subgroup;
}

fn sgmZero() -> SgmResult {
  return SgmResult();
}

// Element [r, c] is p[offset + r * stride + c] row-major, p[offset + c * stride + r] column-major.
fn sgmLoadLeft(p: ptr<workgroup, SgmLeftSource>, offset: u32, stride: u32, colMajor: bool) -> SgmLeft {
  if (colMajor) { return subgroupMatrixLoad<SgmLeft, col_major>(p, offset, stride); }
  return subgroupMatrixLoad<SgmLeft, row_major>(p, offset, stride);
}

fn sgmLoadRight(p: ptr<workgroup, SgmRightSource>, offset: u32, stride: u32, colMajor: bool) -> SgmRight {
  if (colMajor) { return subgroupMatrixLoad<SgmRight, col_major>(p, offset, stride); }
  return subgroupMatrixLoad<SgmRight, row_major>(p, offset, stride);
}

fn sgmStoreResult(p: ptr<workgroup, SgmResultTarget>, offset: u32, value: SgmResult, stride: u32, colMajor: bool) {
  if (colMajor) {
    subgroupMatrixStore<col_major>(p, offset, value, stride);
  } else {
    subgroupMatrixStore<row_major>(p, offset, value, stride);
  }
}

/** left · right + acc */
fn sgmMultiplyAccumulate(left: SgmLeft, right: SgmRight, acc: SgmResult) -> SgmResult {
  return subgroupMatrixMultiplyAccumulate(left, right, acc);
}
