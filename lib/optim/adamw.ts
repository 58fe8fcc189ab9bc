// AdamW with global-norm clipping: f32 moments beside every parameter, one fused kernel per tensor.
// Weight decay applies to matrices only — not to norms' gains and not to embeddings (nanoGPT/llm.c
// practice: decaying them hurts). State (m, v, step) saves to and loads from optimizer.safetensors.
// Kernel: kernels/adamw.wgsl.
import { pipeline, dispatch, clearBuffer, writeBuffer, elementRanges, span } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { strideGrid } from "../gpu/grid.ts";
import { GradNorm } from "./grad_norm.ts";
import type { TensorData } from "../io/safetensors.ts";

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number; // <= 0: no clipping
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0 };

/** Parameters that get weight decay: 2-D matrices other than the embedding table. */
export function decays(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && !name.includes("embed_tokens");
}

// ---- CPU reference (one step, torch.optim.AdamW's arithmetic) ----
export function adamwRef(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  step: number,
  lr: number,
  c: AdamWConfig,
  wd: number,
  clip = 1,
) {
  const bc1 = 1 - c.beta1 ** step,
    bc2 = 1 - c.beta2 ** step;
  const P = Float32Array.from(p),
    M = Float32Array.from(m),
    Vv = Float32Array.from(v);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * clip;
    const x = P[i]! * (1 - lr * wd);
    M[i] = c.beta1 * M[i]! + (1 - c.beta1) * gi;
    Vv[i] = c.beta2 * Vv[i]! + (1 - c.beta2) * gi * gi;
    P[i] = x - (lr / bc1) * (M[i]! / (Math.sqrt(Vv[i]!) / Math.sqrt(bc2) + c.eps));
  }
  return { p: P, m: M, v: Vv };
}

export class AdamW {
  step = 0;
  readonly m: Tensor[];
  readonly v: Tensor[];
  readonly norm: GradNorm;

  constructor(
    readonly names: string[],
    readonly params: Tensor[],
    readonly cfg: AdamWConfig,
  ) {
    this.m = params.map((p) => keep(zeros(p.shape)));
    this.v = params.map((p) => keep(zeros(p.shape)));
    this.norm = new GradNorm(params.map((p) => p.size));
  }

  /**
   * Record the global gradient norm and the factor every gradient is multiplied by into norm.stats
   * (no readback). lossScale: the factor the gradients carry (mixed precision), divided back out.
   */
  computeNorm(lossScale = 1): void {
    this.norm.compute(this.grads(), this.cfg.gradClip, 1 / lossScale);
  }

  private grads(): Tensor[] {
    return this.params.map((p) => {
      if (!p.grad) throw new Error("AdamW: a parameter has no gradient (call backward first)");
      return p.grad;
    });
  }

  /** Clip (with the scale computeNorm recorded) and update every parameter; no readback. */
  update(lr: number): void {
    this.step++;
    const grads = this.grads();
    const bc1 = 1 - this.cfg.beta1 ** this.step,
      bc2 = 1 - this.cfg.beta2 ** this.step;
    this.params.forEach((p, i) => {
      const wd = decays(this.names[i]!, p.shape) ? this.cfg.weightDecay : 0;
      // a parameter over one binding (a big embedding) is updated in element ranges
      for (const [s, n] of elementRanges(p.size)) {
        const w = (t: Tensor) => span(t.buffer, s, n).binding;
        dispatch(
          pipeline("adamw"),
          [w(grads[i]!), this.norm.stats.buffer, w(p), w(this.m[i]!), w(this.v[i]!)],
          [
            n,
            [lr, "f32"],
            [this.cfg.beta1, "f32"],
            [this.cfg.beta2, "f32"],
            [this.cfg.eps, "f32"],
            [wd, "f32"],
            [bc1, "f32"],
            [bc2, "f32"],
          ],
          strideGrid(n),
        );
      }
    });
  }

  async state(): Promise<Record<string, TensorData>> {
    const out: Record<string, TensorData> = {};
    for (let i = 0; i < this.params.length; i++) {
      out[`m.${this.names[i]}`] = {
        dtype: "F32",
        shape: [...this.params[i]!.shape],
        data: (await this.m[i]!.toArray()) as Float32Array,
      };
      out[`v.${this.names[i]}`] = {
        dtype: "F32",
        shape: [...this.params[i]!.shape],
        data: (await this.v[i]!.toArray()) as Float32Array,
      };
    }
    out.step = { dtype: "I64", shape: [1], data: BigInt64Array.of(BigInt(this.step)) };
    return out;
  }

  load(get: (name: string) => Float32Array, step: number): void {
    this.step = step;
    this.params.forEach((_, i) => {
      writeBuffer(this.m[i]!.buffer, get(`m.${this.names[i]}`));
      writeBuffer(this.v[i]!.buffer, get(`v.${this.names[i]}`));
    });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
    this.norm.dispose();
  }
}

function zeros(shape: readonly number[]): Tensor {
  const t = Tensor.empty(shape);
  clearBuffer(t.buffer, 0, t.bytes);
  return t;
}
