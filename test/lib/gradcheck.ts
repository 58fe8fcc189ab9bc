// Directional finite-difference check of every parameter tensor's gradient: along a random direction
// u (standard normal per element), (f(θ+hu) - f(θ-hu)) / 2h against ∇f·u, the gradient already in
// .grad. h = 3e-4 balances the two errors: an f32 loss (≈ 4) carries ~5e-7 of rounding, ~1e-3 in the
// quotient, and the truncation error, measured at ~4% for h = 1e-2 and ~1% for 3e-3, falls with h²
// to ~0.1%. |∇f·u| is 0.3-10 in these tests, hence the 1e-2 relative tolerance with a 2e-3 floor; a
// wrong backward is off by O(1). Returns how many tensors were checked.
import { writeBuffer } from "../../lib/gpu/index.ts";
import { noGrad } from "../../lib/tensor/index.ts";
import { namedParams, normals, type ModelParams } from "../../lib/model/params.ts";
import type { Rng } from "../../lib/base/rng.ts";

export async function checkDirectional(params: ModelParams, loss: () => Promise<number>, rng: Rng): Promise<number> {
  let checked = 0;
  for (const [name, p] of namedParams(params)) {
    const theta = (await p.toArray()) as Float32Array,
      g = (await p.grad!.toArray()) as Float32Array;
    const u = normals(rng, p.size, 1),
      h = 3e-4;
    const at = (s: number) => {
      writeBuffer(
        p.buffer,
        theta.map((x, i) => x + s * h * u[i]!),
      );
      return noGrad(() => loss());
    };
    const fd = ((await at(1)) - (await at(-1))) / (2 * h);
    writeBuffer(p.buffer, theta);
    let gu = 0;
    for (let i = 0; i < g.length; i++) gu += g[i]! * u[i]!;
    if (!(Math.abs(fd - gu) <= 1e-2 * Math.abs(gu) + 2e-3))
      throw new Error(`${name}: finite differences ${fd}, backward ${gu}`);
    checked++;
  }
  return checked;
}
