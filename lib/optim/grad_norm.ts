// Global-norm gradient clipping: the norm over every gradient is computed on the GPU in two
// deterministic passes and turned into a scale that the optimizer applies; the norm itself is read
// back only when the step's metrics are. Kernel: kernels/grad_norm.wgsl.
import { pipeline, dispatch, scratchBuffer, scratchOutBuffer, elementRanges, span } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";

export function gradNormRef(grads: Float32Array[]): number {
  let s = 0;
  for (const g of grads) for (const x of g) s += x * x;
  return Math.sqrt(s);
}

const MAX_WG = 64;

export class GradNorm {
  /** stats: [norm, clip scale] */
  readonly stats: Tensor;
  private partial: Tensor;
  private slots: number[] = [];

  constructor(sizes: number[]) {
    let at = 0;
    for (const n of sizes) {
      this.slots.push(at);
      at += Math.max(1, Math.min(Math.ceil(n / 256), MAX_WG));
    }
    this.partial = keep(Tensor.empty([at]));
    this.stats = keep(Tensor.empty([2]));
  }

  /** Record the passes; afterwards stats holds [‖g‖, min(1, maxNorm / ‖g‖)] (scale 1 when maxNorm <= 0). */
  compute(grads: Tensor[], maxNorm: number, invScale = 1): void {
    const P = this.partial.size;
    grads.forEach((g, i) => {
      const w = Math.max(1, Math.min(Math.ceil(g.size / 256), MAX_WG));
      // a gradient over one binding: ranges of whole strides, each thread's sum carried between them
      const ranges = elementRanges(g.size, w * 256);
      ranges.forEach(([s, n], k) => {
        const flags = { PASS: 0, LOAD_CARRY: k > 0, STORE_CARRY: k < ranges.length - 1 };
        dispatch(
          pipeline("grad_norm", flags),
          [span(g.buffer, s, n).binding, this.partial.buffer, this.stats.buffer, this.carryFor(ranges.length)],
          [n, this.slots[i]!, P, [maxNorm, "f32"], [invScale, "f32"]],
          [w],
        );
      });
    });
    // pass 1 reads no tensor: its input binding gets the scratch buffer
    dispatch(
      pipeline("grad_norm", { PASS: 1 }),
      [scratchBuffer(), this.partial.buffer, this.stats.buffer, scratchOutBuffer()],
      [0, 0, P, [maxNorm, "f32"], [invScale, "f32"]],
      [1],
    );
  }

  private carry: Tensor | null = null;
  private carryFor(ranges: number): GPUBuffer {
    if (ranges === 1) return scratchOutBuffer();
    this.carry ??= keep(Tensor.empty([MAX_WG * 256]));
    return this.carry.buffer;
  }

  dispose(): void {
    this.carry?.dispose();
    this.partial.dispose();
    this.stats.dispose();
  }
}
