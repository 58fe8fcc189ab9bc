// The half-width float codecs against hand-checked bit patterns and exhaustive round trips: every
// bf16 and every finite f16 value widens to f32 and narrows back to the same bits; rounding is to
// nearest, ties to even, as PyTorch rounds.
import { describe, expect, test } from "bun:test";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../lib/io/floats.ts";

describe("floats", () => {
  test("bf16: every bit pattern round-trips; ties round to even; NaN stays NaN", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = bf16ToF32(all);
    const back = f32ToBf16(wide);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(wide[i])) expect(Number.isNaN(bf16ToF32(back.subarray(i, i + 1))[0])).toBe(true);
      else if (back[i] !== i) throw new Error(`bf16 ${i} came back as ${back[i]}`);
    }
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1); 1 + 3·2^-8 goes up to 1 + 2^-6
    expect(Array.from(f32ToBf16(Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5])))).toEqual([
      0x3f80, 0x3f82, 0xc020,
    ]);
  });

  test("f16: every finite pattern round-trips; overflow to Inf, subnormals, ties to even", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const wide = f16ToF32(all);
    const back = f32ToF16(wide);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(wide[i])) continue;
      if (back[i] !== i) throw new Error(`f16 ${i} (${wide[i]}) came back as ${back[i]}`);
    }
    expect(Array.from(f16ToF32(Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff])))).toEqual([1, -2, 2 ** -24, 65504]);
    // 65520 is halfway between 65504 and 2^16 (Inf in f16): ties to even → Inf; 1 + 2^-11 ties to 1
    expect(Array.from(f32ToF16(Float32Array.from([65520, 1e6, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -26])))).toEqual([
      0x7c00, 0x7c00, 0x3c00, 0x3c02, 0,
    ]);
  });
});
