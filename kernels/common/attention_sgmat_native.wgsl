// sgmLoadResult on Dawn's subgroup-matrix builtins (see attention_sgmat.wgsl): a result matrix loaded
// back from workgroup memory, element [r, c] at p[offset + r * stride + c] row-major, p[offset + c *
// stride + r] column-major, the layout sgmStoreResult writes. Not among the operations of
// subgroup_matrix_native.wgsl, which the matmul does not need.
fn sgmLoadResult(p: ptr<workgroup, SgmResultTarget>, offset: u32, stride: u32, colMajor: bool) -> SgmResult {
  if (colMajor) { return subgroupMatrixLoad<SgmResult, col_major>(p, offset, stride); }
  return subgroupMatrixLoad<SgmResult, row_major>(p, offset, stride);
}

/** A loop bound over matrices: a constant, so that the compiler may unroll and keep accumulators in registers. */
fn sgmLoop(n: u32) -> u32 {
  return n;
}
