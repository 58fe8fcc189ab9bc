// Included by the matmul kernels (lib/gpu/pipelines.ts expands `// #include` lines): the F16_INPUTS
// switch and q16(), applied to every operand as it is loaded.
// F16_INPUTS: round both operands to f16 precision and accumulate in f32 — exactly what f16×f16→f32
// tensor-core instructions compute (a product of two f16 values is exact in f32). Mixed precision's
// reference path on adapters without subgroup matrices.
const F16_INPUTS: bool = false;

fn q16(x: f32) -> f32 {
  if (F16_INPUTS) {
    // past f16's range (65504, which rounds to infinity from 65520 on) the hardware gives ±inf, and
    // the loss scaler counts on seeing it; quantizeToF16 leaves that case to the implementation
    if (abs(x) >= 65520.0) { return x * 3.0e38; } // overflows to ±inf at run time
    return quantizeToF16(x);
  }
  return x;
}
