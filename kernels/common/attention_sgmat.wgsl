// Included by the training attention kernels on subgroup matrices (attention_forward_sgmat,
// attention_backward_dq_sgmat, attention_backward_dkv_sgmat): the matrix operations of
// subgroup_matrix_native.wgsl or subgroup_matrix_emulate.wgsl (per the SUBGROUP_MATRIX string define),
// the one more they need, sgmLoadResult (attention_sgmat_native/emulate.wgsl: the forward rescales
// its output rows when the running max grows), and f16 rounding. The includer declares what
// subgroup_matrix_native.wgsl asks for: SGM_SUBGROUPS and the aliases SgmLeftSource, SgmRightSource,
// SgmResultTarget (each kernel keeps all its left operands in one workgroup array of that type, all
// its right operands in another, at fixed offsets, since the operations take one pointer type each).
// #include "common/subgroup_matrix_{SUBGROUP_MATRIX}.wgsl"
// #include "common/attention_sgmat_{SUBGROUP_MATRIX}.wgsl"

// f32 → f16 rounded to nearest, as matmul_sgmat.wgsl rounds: past f16's range ±inf (the loss
// scaler's signal when scaled gradients overflow; WGSL leaves the conversion undefined there), NaN
// kept. The bit patterns carry x's sign so that they are not constants (a constant inf is an error).
fn toF16(x: f32) -> f16 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return bitcast<vec2<f16>>(sign | 0x7e00u).x; }
  if (abs(x) >= 65520.0) { return bitcast<vec2<f16>>(sign | 0x7c00u).x; }
  return f16(x);
}
