// Included by the kernels that read weights kept half-width (lib/tensor/tensor.ts's "bf16" and "f16"
// tensors: two values per 32-bit word, element i in the low half of word i/2 when i is even): matmul's
// B operand and the embedding table. The including kernel binds that operand as 32-bit words (u32)
// and reads element i through its own load function, which returns bitcast<f32>(word) when HALF is 0
// (f32 tensors: a free reinterpretation, the same loads as an array<f32>) and widenHalf otherwise.
// Widening is exact (every bf16 and f16 value is an f32 value), so a product over half-width weights
// is the f32 kernel's arithmetic on the widened values, bit for bit. Core WGSL only, no shader-f16:
// a bf16 is the high half of an f32, and unpack2x16float reads f16 on every adapter.
// HALF: 0 f32 words; 1 bf16 pairs; 2 f16 pairs (lib/ops/matmul.ts's halfCode).
const HALF: u32 = 0u;

// The half of word w that holds an element: the low one for even elements, the high one for odd.
fn widenHalf(w: u32, odd: bool) -> f32 {
  if (HALF == 1u) { return bitcast<f32>(select(w << 16u, w & 0xffff0000u, odd)); }
  return unpack2x16float(w)[select(0u, 1u, odd)];
}
