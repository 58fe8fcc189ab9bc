// Muon (MomentUm Orthogonalized by Newton–Schulz; Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/,
// code: KellerJordan/Muon muon.py, torch.optim.Muon) for the hidden 2-D matrices of the layers, AdamW
// (adamw.ts, unchanged) for everything else — embeddings, the LM head, norms' gains, biases — as
// Muon's authors split them: an orthogonalized update suits a linear map between hidden states, not
// a lookup table, a classifier or a vector.
// Per Muon matrix G (rows R, cols C) and step:
//   m ← β m + (1-β) g;  u = (1-β) g + β m (Nesterov)          kernels/muon_momentum.wgsl
//   X = u / (‖u‖_F + 1e-7)  (transposed when R > C)            grad_norm.wgsl + muon_normalize.wgsl
//   5 × { A = X Xᵀ;  B = b A + c A²;  X ← a X + B X }          matmul.ts + kernels/muon_combine.wgsl
//   p ← p (1 - lr·wd) - lr · max(1, R/C)^½ · X                 kernels/muon_update.wgsl
// with (a, b, c) = (3.4445, -4.7750, 2.0315): the quintic that pushes every singular value in (0, 1]
// into roughly [0.7, 1.2] in five steps (not exactly 1: the authors found that costs nothing).
// The reference iterates in bf16 on the GPU; this runs it in f32 (also under --precision mixed), so the
// update is the exact-arithmetic one to f32 rounding. No readback: the norms stay on the GPU.
// State: AdamW's m./v./step for its parameters plus muon_m.NAME (the momentum) per Muon matrix.
import { pipeline, dispatch, copyBuffer, clearBuffer, writeBuffer, elementRanges, span } from "../gpu/index.ts";
import { strideGrid } from "../gpu/grid.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep, scope } from "../tensor/scope.ts";
import { noGrad } from "../tensor/autograd.ts";
import { matmul, withMatmulPrecision } from "../ops/index.ts";
import { AdamW, type AdamWConfig } from "./adamw.ts";
import { GradNorm } from "./grad_norm.ts";
import type { TensorData } from "../io/safetensors.ts";

export interface MuonConfig {
  /** Muon's lr at the schedule's peak; it follows the schedule as lr · (this / maxLr) */
  lr: number;
  /** the schedule's peak (--max-lr), AdamW's lr: Muon's lr is scaled by the same fraction of it */
  maxLr: number;
  momentum: number;
  nesterov: boolean;
  nsSteps: number;
  weightDecay: number;
}

export const MUON_DEFAULTS: Omit<MuonConfig, "maxLr"> = {
  lr: 0.02,
  momentum: 0.95,
  nesterov: true,
  nsSteps: 5,
  weightDecay: 0,
};

/** The quintic's coefficients (KellerJordan/Muon zeropower_via_newtonschulz5). */
export const NS_COEFFS = [3.4445, -4.775, 2.0315] as const;
/** Added to ‖u‖_F before dividing: a zero momentum (a matrix that never had a gradient) stays zero. */
export const NS_EPS = 1e-7;

/** Parameters Muon updates: the 2-D matrices inside the layers (attention and MLP projections). */
export function usesMuon(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && /(^|\.)layers\.\d+\./.test(name);
}

/** The update's scale for an (R, C) matrix: a tall matrix's orthogonal update has a smaller RMS. */
export function muonScale(rows: number, cols: number): number {
  return Math.max(1, rows / cols) ** 0.5;
}

// ---- CPU reference (f64 arithmetic) ----

/** NS_COEFFS' quintic, `steps` times, on g (R, C) normalized by its Frobenius norm. */
export function newtonSchulzRef(g: Float32Array, R: number, C: number, steps: number): Float64Array {
  const tall = R > C;
  const r = tall ? C : R,
    c = tall ? R : C;
  // X (r, c): g, or its transpose
  let X = new Float64Array(r * c);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) X[tall ? j * c + i : i * c + j] = g[i * C + j]!;
  const fro = Math.sqrt(X.reduce((s, x) => s + x * x, 0));
  X = X.map((x) => x / (fro + NS_EPS));
  const [a, b, cc] = NS_COEFFS;
  for (let s = 0; s < steps; s++) {
    const A = new Float64Array(r * r);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < r; j++) {
        let t = 0;
        for (let k = 0; k < c; k++) t += X[i * c + k]! * X[j * c + k]!;
        A[i * r + j] = t;
      }
    const B = new Float64Array(r * r);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < r; j++) {
        let t = 0;
        for (let k = 0; k < r; k++) t += A[i * r + k]! * A[k * r + j]!;
        B[i * r + j] = b * A[i * r + j]! + cc * t;
      }
    const Y = new Float64Array(r * c);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < c; j++) {
        let t = 0;
        for (let k = 0; k < r; k++) t += B[i * r + k]! * X[k * c + j]!;
        Y[i * c + j] = a * X[i * c + j]! + t;
      }
    X = Y;
  }
  if (!tall) return X;
  const out = new Float64Array(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) out[i * C + j] = X[j * c + i]!;
  return out;
}

/** One Muon step on an (R, C) matrix: the new parameter and momentum. clip: grad_norm's factor. */
export function muonRef(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  R: number,
  C: number,
  lr: number,
  c: Omit<MuonConfig, "maxLr">,
  clip = 1,
): { p: Float32Array; m: Float32Array } {
  const M = new Float32Array(m.length),
    u = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) {
    const gi = g[i]! * clip;
    M[i] = c.momentum * m[i]! + (1 - c.momentum) * gi;
    u[i] = c.nesterov ? (1 - c.momentum) * gi + c.momentum * M[i]! : M[i]!;
  }
  const o = newtonSchulzRef(u, R, C, c.nsSteps);
  const s = muonScale(R, C);
  const P = p.map((x, i) => x * (1 - lr * c.weightDecay) - lr * s * o[i]!);
  return { p: P, m: M };
}

// ---- GPU ----

function elementwise(name: string, bindings: Tensor[], whole: GPUBuffer[], scalars: [number, "f32"][], n: number) {
  // a matrix over one binding goes in element ranges, as AdamW's tensors do
  for (const [s, k] of elementRanges(n))
    dispatch(
      pipeline(name),
      [...whole, ...bindings.map((t) => span(t.buffer, s, k).binding)],
      [k, ...scalars],
      strideGrid(k),
    );
}

/** x ← α x + β y (same sizes). */
function combine(x: Tensor, y: Tensor, alpha: number, beta: number): void {
  for (const [s, k] of elementRanges(x.size))
    dispatch(
      pipeline("muon_combine"),
      [span(y.buffer, s, k).binding, span(x.buffer, s, k).binding],
      [k, [alpha, "f32"], [beta, "f32"]],
      strideGrid(k),
    );
}

/**
 * The quintic Newton–Schulz iteration on x (R, C), in place; x must already be scaled so its singular
 * values are at most 1. A tall x (R > C) is iterated as its transpose without forming it: with X = xᵀ,
 * X Xᵀ = xᵀx and (B X)ᵀ = x Bᵀ, so every product is the reference's, through matmul's transposed layouts.
 */
export function newtonSchulz(x: Tensor, steps: number): void {
  const [R, C] = x.shape as [number, number];
  const tall = R > C;
  const [a, b, c] = NS_COEFFS;
  noGrad(() =>
    withMatmulPrecision("f32", () => {
      for (let s = 0; s < steps; s++)
        scope(() => {
          const A = tall ? matmul(x, x, { transA: true }) : matmul(x, x, { transB: true }); // (r, r)
          combine(A, matmul(A, A), b, c); // A now holds B
          combine(x, tall ? matmul(x, A, { transB: true }) : matmul(A, x), a, 1);
        });
    }),
  );
}

/** A Muon matrix's own piece: its momentum and the two-float buffer its Frobenius norm lands in. */
interface MuonSlot {
  index: number; // into names / params
  m: Tensor; // (R, C)
  fro: GradNorm;
}

export class Muon {
  readonly adamw: AdamW;
  /** the global gradient norm over every parameter (AdamW's and Muon's): what --grad-clip clips */
  readonly norm: GradNorm;
  private readonly slots: MuonSlot[] = [];

  constructor(
    readonly names: string[],
    readonly params: Tensor[],
    readonly adamCfg: AdamWConfig,
    readonly cfg: MuonConfig,
  ) {
    const adamIdx: number[] = [];
    params.forEach((p, i) => {
      if (usesMuon(names[i]!, p.shape))
        this.slots.push({ index: i, m: keep(zeros(p.shape)), fro: new GradNorm([p.size]) });
      else adamIdx.push(i);
    });
    this.adamw = new AdamW(
      adamIdx.map((i) => names[i]!),
      adamIdx.map((i) => params[i]!),
      adamCfg,
    );
    this.norm = new GradNorm(params.map((p) => p.size));
  }

  /** Optimizer steps taken (AdamW's count: both halves step together). */
  get step(): number {
    return this.adamw.step;
  }

  /** The names Muon updates (the rest go to AdamW). */
  get muonNames(): string[] {
    return this.slots.map((s) => this.names[s.index]!);
  }

  /** As AdamW.computeNorm, over all parameters; AdamW's half reads the same clip factor. */
  computeNorm(lossScale = 1): void {
    const grads = this.params.map((p) => {
      if (!p.grad) throw new Error("Muon: a parameter has no gradient (call backward first)");
      return p.grad;
    });
    this.norm.compute(grads, this.adamCfg.gradClip, 1 / lossScale);
    // AdamW's kernel reads its own stats buffer: give it the global [norm, clip] (a GPU copy, no readback)
    copyBuffer(this.norm.stats.buffer, 0, this.adamw.norm.stats.buffer, 0, 8);
  }

  /** lr: the schedule's lr (AdamW's); Muon's is lr · cfg.lr / cfg.maxLr. No readback. */
  update(lr: number): void {
    this.adamw.update(lr);
    const mlr = (lr * this.cfg.lr) / this.cfg.maxLr;
    // f32 scalars computed as torch computes them (in double, then rounded once)
    const w1 = 1 - this.cfg.momentum,
      w2 = this.cfg.momentum;
    for (const s of this.slots) {
      const p = this.params[s.index]!;
      const [R, C] = p.shape as [number, number];
      scope(() => {
        const u = Tensor.empty([R, C]);
        for (const [at, k] of elementRanges(p.size))
          dispatch(
            pipeline("muon_momentum", { NESTEROV: this.cfg.nesterov }),
            [
              span(p.grad!.buffer, at, k).binding,
              this.norm.stats.buffer,
              span(s.m.buffer, at, k).binding,
              span(u.buffer, at, k).binding,
            ],
            [k, [w1, "f32"], [w2, "f32"]],
            strideGrid(k),
          );
        s.fro.compute([u], 0);
        elementwise("muon_normalize", [u], [s.fro.stats.buffer], [[NS_EPS, "f32"]], u.size);
        newtonSchulz(u, this.cfg.nsSteps);
        elementwise(
          "muon_update",
          [u, p],
          [],
          [
            [1 - mlr * this.cfg.weightDecay, "f32"],
            [-mlr, "f32"],
            [muonScale(R, C), "f32"],
          ],
          p.size,
        );
      });
    }
  }

  /** Every state tensor's name and shape, as state() writes them (checkpoint.ts checks a file against it). */
  stateShapes(): Map<string, readonly number[]> {
    const out = adamwStateShapes(this.adamw);
    for (const s of this.slots) out.set(`muon_m.${this.names[s.index]}`, this.params[s.index]!.shape);
    return out;
  }

  async state(): Promise<Record<string, TensorData>> {
    const out = await this.adamw.state();
    for (const s of this.slots)
      out[`muon_m.${this.names[s.index]}`] = {
        dtype: "F32",
        shape: [...s.m.shape],
        data: (await s.m.toArray()) as Float32Array,
      };
    return out;
  }

  load(get: (name: string) => Float32Array, step: number): void {
    this.adamw.load(get, step);
    for (const s of this.slots) {
      writeBuffer(s.m.buffer, get(`muon_m.${this.names[s.index]}`));
    }
  }

  dispose(): void {
    this.adamw.dispose();
    this.norm.dispose();
    for (const s of this.slots) {
      s.m.dispose();
      s.fro.dispose();
    }
  }
}

/** The optimizer a training run holds (--optimizer). */
export type Optimizer = AdamW | Muon;

/** AdamW's state tensors by name, as AdamW.state() writes them. */
export function adamwStateShapes(opt: AdamW): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>([["step", [1]]]);
  opt.names.forEach((n, i) => {
    out.set(`m.${n}`, opt.params[i]!.shape);
    out.set(`v.${n}`, opt.params[i]!.shape);
  });
  return out;
}

/** Every state tensor's name and shape for either optimizer. */
export function stateShapes(opt: Optimizer): Map<string, readonly number[]> {
  return opt instanceof Muon ? opt.stateShapes() : adamwStateShapes(opt);
}

function zeros(shape: readonly number[]): Tensor {
  const t = Tensor.empty(shape);
  clearBuffer(t.buffer, 0, t.bytes);
  return t;
}
