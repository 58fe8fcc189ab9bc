// Mixture-of-experts routing and expert products (Shazeer et al. 2017; Fedus et al. 2021 "Switch
// Transformers"; as Qwen2-MoE and DeepSeek-V2 compute them in transformers), dropless: every token
// goes to its K experts, nothing is cut by a capacity. The pieces, each a differentiable op:
//   routerSoftmax  probabilities over the E experts of each token's router logits      (N, E)
//   moeTopk        the K largest, ties to the lowest expert id, optionally renormalized  (N, K)
//   moePlan        a stable counting sort of the N·K slots by expert (no gradient)
//   moeGather      tokens into the plan's expert-sorted rows                          (N·K, C)
//   groupedMatmul  each row times its expert's weight, all experts in one dispatch     (N·K, P)
//   moeCombine     rows back to their tokens, weighted by the router, + a residual        (N, C)
//   sharedGate     Qwen2-MoE's shared expert scaled by σ(its gate's logit), + a residual  (N, C)
//   stackExperts   E expert weights (one tensor each, as checkpoints name them) as one (E, ...)
// Every sum runs in a fixed order (no atomics), so a step is deterministic. The CPU references sit
// beside each op. Kernels: kernels/moe_router.wgsl, moe_plan.wgsl, moe_matmul.wgsl, moe_combine.wgsl,
// moe_shared_gate.wgsl.
import { pipeline, dispatch, copyBuffer, scratchBuffer, scratchOutBuffer } from "../gpu/index.ts";
import { strideGrid } from "../gpu/grid.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";

// ---- CPU references (f64 sums) ----

export function routerSoftmaxRef(logits: Float32Array, N: number, E: number): Float32Array {
  const out = new Float32Array(N * E);
  for (let t = 0; t < N; t++) {
    const row = logits.subarray(t * E, (t + 1) * E);
    const m = Math.max(...row);
    let s = 0;
    for (const x of row) s += Math.exp(x - m);
    for (let e = 0; e < E; e++) out[t * E + e] = Math.exp(row[e]! - m) / s;
  }
  return out;
}

export interface TopkOpts {
  /** divide the K weights by their sum (norm_topk_prob) */
  norm: boolean;
  /** multiply the weights (DeepSeek's routed_scaling_factor); 1 for Qwen2-MoE */
  scale: number;
}

/** The K largest of each row of probs (N, E), ties to the lowest id: weights (N, K) and ids (N, K). */
export function topkRef(probs: Float32Array, N: number, E: number, K: number, o: TopkOpts) {
  const weights = new Float32Array(N * K),
    experts = new Uint32Array(N * K);
  for (let t = 0; t < N; t++) {
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => probs[t * E + b]! - probs[t * E + a]! || a - b);
    let S = 0;
    for (let j = 0; j < K; j++) S += probs[t * E + order[j]!]!;
    for (let j = 0; j < K; j++) {
      const s = probs[t * E + order[j]!]!;
      experts[t * K + j] = order[j]!;
      weights[t * K + j] = o.scale * (o.norm ? s / S : s);
    }
  }
  return { weights, experts };
}

/** moe_plan.wgsl's stable sort of the slots by expert. */
export function planRef(experts: Uint32Array, E: number) {
  const S = experts.length;
  const counts = new Float32Array(E);
  for (const e of experts) counts[e]!++;
  const offsets = new Uint32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + counts[e]!;
  const rows = new Uint32Array(S),
    slotRow = new Uint32Array(S);
  const at = offsets.slice(0, E);
  for (let s = 0; s < S; s++) {
    const r = at[experts[s]!]!++;
    rows[r] = s;
    slotRow[s] = r;
  }
  return { counts, offsets, rows, slotRow };
}

/**
 * The routed experts' output for x (N, C): Σ_j w[t, j] · down_e(silu(gate_e(x)) ⊙ up_e(x)) with
 * wGate, wUp (E, I, C), wDown (E, C, I): the whole routed half of a MoE layer, token by token, as
 * the reference the composed GPU ops are checked against.
 */
export function moeRoutedRef(
  x: Float32Array,
  router: Float32Array,
  wGate: Float32Array,
  wUp: Float32Array,
  wDown: Float32Array,
  N: number,
  C: number,
  E: number,
  I: number,
  K: number,
  o: TopkOpts,
): Float32Array {
  const logits = new Float32Array(N * E);
  for (let t = 0; t < N; t++)
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[t * C + c]! * router[e * C + c]!;
      logits[t * E + e] = s;
    }
  const { weights, experts } = topkRef(routerSoftmaxRef(logits, N, E), N, E, K, o);
  const out = new Float32Array(N * C);
  const h = new Float64Array(I);
  for (let t = 0; t < N; t++)
    for (let j = 0; j < K; j++) {
      const e = experts[t * K + j]!;
      for (let i = 0; i < I; i++) {
        let g = 0,
          u = 0;
        for (let c = 0; c < C; c++) {
          g += x[t * C + c]! * wGate[(e * I + i) * C + c]!;
          u += x[t * C + c]! * wUp[(e * I + i) * C + c]!;
        }
        h[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let c = 0; c < C; c++) {
        let y = 0;
        for (let i = 0; i < I; i++) y += h[i]! * wDown[(e * C + c) * I + i]!;
        out[t * C + c] += weights[t * K + j]! * y;
      }
    }
  return out;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** res + σ(g[t]) · y[t, :] for y (N, C) and the gate's logits g (N). */
export function sharedGateRef(y: Float32Array, g: Float32Array, N: number, C: number, res?: Float32Array) {
  const out = new Float32Array(N * C);
  for (let t = 0; t < N; t++)
    for (let c = 0; c < C; c++) out[t * C + c] = (res?.[t * C + c] ?? 0) + sigmoid(g[t]!) * y[t * C + c]!;
  return out;
}

/** sharedGateRef's gradients for upstream dout: dy (N, C) and dg (N) (dres is dout itself). */
export function sharedGateBackwardRef(dout: Float32Array, y: Float32Array, g: Float32Array, N: number, C: number) {
  const dy = new Float32Array(N * C),
    dg = new Float32Array(N);
  for (let t = 0; t < N; t++) {
    const s = sigmoid(g[t]!);
    let acc = 0;
    for (let c = 0; c < C; c++) {
      dy[t * C + c] = s * dout[t * C + c]!;
      acc += dout[t * C + c]! * y[t * C + c]!;
    }
    dg[t] = s * (1 - s) * acc;
  }
  return { dy, dg };
}

// ---- GPU ops ----

const anyIn = () => scratchBuffer();
const anyOut = () => scratchOutBuffer();

/** Softmax over the last axis of router logits (N, E). */
export function routerSoftmax(logits: Tensor): Tensor {
  const [N, E] = logits.shape as [number, number];
  const probs = Tensor.empty([N, E]);
  const launch = (mode: number, a: Tensor, b: GPUBuffer, out: Tensor) =>
    dispatch(
      pipeline("moe_router", { MODE: mode }),
      [a.buffer, b, anyIn(), out.buffer, anyOut()],
      [N, E, 0, [1, "f32"]],
      strideGrid(N, 64),
    );
  launch(0, logits, anyIn(), probs);
  return record(probs, "router_softmax", [logits], (dp) => {
    const d = Tensor.empty([N, E]);
    launch(1, probs, dp.buffer, d);
    return [d];
  });
}

/** Top-K routing of probs (N, E): weights (N, K), differentiable in probs, and expert ids (N, K) u32. */
export function moeTopk(probs: Tensor, K: number, o: TopkOpts): { weights: Tensor; experts: Tensor } {
  const [N, E] = probs.shape as [number, number];
  if (K > E) throw new Error(`moeTopk: top ${K} of ${E} experts`);
  const weights = Tensor.empty([N, K]),
    experts = Tensor.empty([N, K], "u32");
  const defs = (mode: number) => pipeline("moe_router", { MODE: mode, NORM: o.norm });
  const scalars = [N, E, K, [o.scale, "f32"]] as const;
  dispatch(defs(2), [probs.buffer, anyIn(), anyIn(), weights.buffer, experts.buffer], [...scalars], strideGrid(N, 64));
  record(weights, "moe_topk", [probs], (dw) => {
    const d = Tensor.empty([N, E]);
    dispatch(defs(3), [probs.buffer, dw.buffer, experts.buffer, d.buffer, anyOut()], [...scalars], strideGrid(N, 64));
    return [d];
  });
  return { weights, experts };
}

/** Where every routing slot goes: see kernels/moe_plan.wgsl. Shapes: S = N·K. */
export interface MoePlan {
  N: number;
  K: number;
  E: number;
  experts: Tensor; // (S) u32
  rows: Tensor; // (S) u32: row → slot
  slotRow: Tensor; // (S) u32: slot → row
  offsets: Tensor; // (E + 1) u32
  counts: Tensor; // (E) f32: slots per expert
}

export function moePlan(experts: Tensor, E: number): MoePlan {
  const [N, K] = experts.shape as [number, number];
  const S = N * K;
  const plan: MoePlan = {
    N,
    K,
    E,
    experts,
    rows: Tensor.empty([S], "u32"),
    slotRow: Tensor.empty([S], "u32"),
    offsets: Tensor.empty([E + 1], "u32"),
    counts: Tensor.empty([E]),
  };
  dispatch(
    pipeline("moe_plan"),
    [experts.buffer, plan.rows.buffer, plan.slotRow.buffer, plan.offsets.buffer, plan.counts.buffer],
    [S, E],
    [1],
  );
  return plan;
}

type CombineMode = { mode: number; residual?: boolean; weighted?: boolean };

function combineLaunch(
  m: CombineMode,
  plan: MoePlan,
  C: number,
  out: Tensor,
  a: Tensor,
  b?: Tensor,
  w?: Tensor,
  res?: Tensor,
): Tensor {
  const S = plan.N * plan.K;
  const n = m.mode === 0 || m.mode === 2 ? S * C : m.mode === 3 ? S : plan.N * C;
  dispatch(
    pipeline("moe_combine", { MODE: m.mode, RESIDUAL: m.residual ?? false, WEIGHTED: m.weighted ?? true }),
    [
      a.buffer,
      b?.buffer ?? anyIn(),
      w?.buffer ?? anyIn(),
      res?.buffer ?? anyIn(),
      plan.rows.buffer,
      plan.slotRow.buffer,
      out.buffer,
    ],
    [plan.N, plan.K, C],
    strideGrid(n),
  );
  return out;
}

/** x (N, C) → the plan's rows (N·K, C): row r holds the token of slot rows[r]. */
export function moeGather(x: Tensor, plan: MoePlan): Tensor {
  const C = x.shape[1]!;
  const out = combineLaunch({ mode: 0 }, plan, C, Tensor.empty([plan.N * plan.K, C]), x);
  return record(out, "moe_gather", [x], (d) => [
    combineLaunch({ mode: 1, weighted: false }, plan, C, Tensor.empty([plan.N, C]), d),
  ]);
}

/** rows y (N·K, C) → tokens: residual + Σ_j weights[t, j] · y[row of slot (t, j)]. */
export function moeCombine(y: Tensor, weights: Tensor, plan: MoePlan, residual?: Tensor): Tensor {
  const C = y.shape[1]!;
  const out = combineLaunch(
    { mode: 1, residual: !!residual },
    plan,
    C,
    Tensor.empty([plan.N, C]),
    y,
    undefined,
    weights,
    residual,
  );
  const inputs = [y, weights, ...(residual ? [residual] : [])];
  return record(out, "moe_combine", inputs, (d) => {
    const dy = y.requiresGrad
      ? combineLaunch({ mode: 2 }, plan, C, Tensor.empty(y.shape), d, undefined, weights)
      : null;
    const dw = weights.requiresGrad ? combineLaunch({ mode: 3 }, plan, C, Tensor.empty(weights.shape), d, y) : null;
    return [dy, dw, ...(residual ? [d] : [])];
  });
}

function groupedLaunch(mode: number, out: Tensor, a: Tensor, w: Tensor, plan: MoePlan, P: number, Q: number) {
  const R = plan.N * plan.K;
  dispatch(
    pipeline("moe_matmul", { MODE: mode }),
    [a.buffer, w.buffer, plan.experts.buffer, plan.rows.buffer, plan.offsets.buffer, out.buffer],
    [R, P, Q, plan.E],
    strideGrid(out.size),
  );
  return out;
}

/** a (N·K, Q) in plan order times its rows' experts' w (E, P, Q) transposed: (N·K, P). */
export function groupedMatmul(a: Tensor, w: Tensor, plan: MoePlan): Tensor {
  const [E, P, Q] = w.shape as [number, number, number];
  const R = plan.N * plan.K;
  if (E !== plan.E || a.shape[0] !== R || a.shape[1] !== Q)
    throw new Error(`groupedMatmul: a [${a.shape}], w [${w.shape}] for ${plan.E} experts and ${R} rows`);
  const out = groupedLaunch(0, Tensor.empty([R, P]), a, w, plan, P, Q);
  return record(out, "grouped_matmul", [a, w], (d) => [
    a.requiresGrad ? groupedLaunch(1, Tensor.empty([R, Q]), d, w, plan, Q, P) : null,
    w.requiresGrad ? groupedLaunch(2, Tensor.empty([E, P, Q]), d, a, plan, P, Q) : null,
  ]);
}

/** E same-shape weights (each expert's, as checkpoints name them) copied into one (E, ...) tensor. */
export function stackExperts(ws: Tensor[]): Tensor {
  const shape = ws[0]!.shape;
  const out = Tensor.empty([ws.length, ...shape]);
  const bytes = ws[0]!.bytes;
  ws.forEach((w, e) => {
    if (w.size !== ws[0]!.size) throw new Error(`stackExperts: expert ${e} is [${w.shape}], not [${shape}]`);
    copyBuffer(w.buffer, 0, out.buffer, e * bytes, bytes);
  });
  return record(out, "stack_experts", ws, (d) =>
    ws.map((w, e) => {
      if (!w.requiresGrad) return null;
      const g = Tensor.empty(shape);
      copyBuffer(d.buffer, e * bytes, g.buffer, 0, bytes);
      return g;
    }),
  );
}

function sharedGateLaunch(mode: number, out: Tensor, a: Tensor, g: Tensor, c: Tensor | null, N: number, C: number) {
  dispatch(
    pipeline("moe_shared_gate", { MODE: mode, RESIDUAL: mode === 0 && !!c }),
    [a.buffer, g.buffer, c?.buffer ?? anyIn(), out.buffer],
    [N, C],
    strideGrid(out.size),
  );
  return out;
}

/** Qwen2-MoE's gated shared expert: residual + σ(g) ⊙ y for y (N, C) and shared_expert_gate's logits g (N, 1). */
export function sharedGate(y: Tensor, g: Tensor, residual?: Tensor): Tensor {
  const [N, C] = y.shape as [number, number];
  if (g.size !== N) throw new Error(`sharedGate: gate logits [${g.shape}] for ${N} rows`);
  const out = sharedGateLaunch(0, Tensor.empty([N, C]), y, g, residual ?? null, N, C);
  return record(out, "shared_gate", [y, g, ...(residual ? [residual] : [])], (d) => [
    y.requiresGrad ? sharedGateLaunch(1, Tensor.empty([N, C]), d, g, null, N, C) : null,
    g.requiresGrad ? sharedGateLaunch(2, Tensor.empty(g.shape), d, g, y, N, C) : null,
    ...(residual ? [d] : []),
  ]);
}
