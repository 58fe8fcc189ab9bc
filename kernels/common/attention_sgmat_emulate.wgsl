// sgmLoadResult, emulated (see attention_sgmat.wgsl): the inverse of subgroup_matrix_emulate.wgsl's
// sgmStoreResult, each lane taking elements lane + j·SGM_SUBGROUP_SIZE of the row-major enumeration.
fn sgmLoadResult(p: ptr<workgroup, SgmResultTarget>, offset: u32, stride: u32, colMajor: bool) -> SgmResult {
  var m: SgmResult;
  for (var j = 0u; j < SGM_RESULT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_RESULT_LEN) { m.v[j] = (*p)[sgmIndex(e / SGM_N, e % SGM_N, offset, stride, colMajor)]; }
  }
  return m;
}

/**
 * A loop bound over matrices, opaque (see opaque() in attention_keys.wgsl): llvmpipe would unroll the
 * loop, and every copy of an emulated multiply-accumulate brings two barriers and its own unrolled
 * loops; the backward kernels compiled for over 40 s before.
 */
fn sgmLoop(n: u32) -> u32 {
  return opaque(n);
}
