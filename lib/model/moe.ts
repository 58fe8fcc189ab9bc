// Mixture-of-experts MLP layers (Fedus et al. 2021, "Switch Transformers"; DeepSeek-V2, Liu et al.
// 2024), in the layout and arithmetic of transformers' DeepSeek-V2 and of our own models:
//   y = h + s(n) · shared(n) + Σ_{j<K} w_j · expert_{e_j}(n),   n = rmsnorm(h),
//   (e_j, w_j) = top-K of softmax(n · routerᵀ), ties to the lowest id, w renormalized or scaled,
// each expert (and the shared one) a SwiGLU MLP; s = 1, or σ(n · shared_expert_gateᵀ) in Qwen2-MoE.
// Dropless: every token reaches its K experts. The routed half runs on lib/ops/moe.ts's kernels; the
// shared experts are one swigluMlp.
// Config keys (Hugging Face's names): ours (model_type llama) takes Qwen2-MoE's num_experts,
// num_experts_per_tok, moe_intermediate_size, norm_topk_prob, router_aux_loss_coef,
// decoder_sparse_step, mlp_only_layers, plus DeepSeek's n_shared_experts (ungated shared experts);
// deepseek_v2 its own (n_routed_experts, first_k_dense_replace, moe_layer_freq, routed_scaling_factor,
// aux_loss_alpha, ...); qwen2_moe Qwen2-MoE's, with one shared expert of shared_expert_intermediate_size
// behind its sigmoid gate. Checked against test/reference/hf_families_ref.py (PyTorch, from transformers'
// modeling_qwen2_moe.py and DeepSeek's modeling_deepseek.py) by test/model/families.test.ts. The load-balancing loss (aux) is collected while the model runs forward
// (collectRouting) and added to the training loss by the strategy.
import type { Tensor } from "../tensor/tensor.ts";
import { add, matmul, scale, sumRows } from "../ops/index.ts";
import { reshape } from "../ops/shape.ts";
import { swiglu, swigluMlp } from "../ops/swiglu.ts";
import {
  groupedMatmul,
  moeCombine,
  moeGather,
  moePlan,
  moeTopk,
  routerSoftmax,
  sharedGate,
  stackExperts,
  type TopkOpts,
} from "../ops/moe.ts";

export interface MoeConfig {
  /** routed experts E */
  experts: number;
  /** experts per token K */
  topK: number;
  /** each routed expert's SwiGLU width */
  intermediate: number;
  /** the shared experts' total SwiGLU width (0: none) */
  sharedIntermediate: number;
  /** Qwen2-MoE: the shared expert is mlp.shared_expert, scaled by σ(mlp.shared_expert_gate) (else
   * DeepSeek's ungated mlp.shared_experts) */
  sharedGate: boolean;
  route: TopkOpts;
  /** the auxiliary loss's coefficient (0: none) */
  auxCoef: number;
  /** qwen: one Switch loss over every MoE layer's tokens together (transformers' load_balancing_loss_func);
   * deepseek: one per layer, its expert fractions over the K slots (DeepSeek-V2's MoEGate), summed */
  auxKind: "qwen" | "deepseek";
  /** per layer: an MoE layer (else the dense MLP) */
  layers: boolean[];
}

export interface ExpertParams {
  gate_proj: Tensor; // (I, C)
  up_proj: Tensor; // (I, C)
  down_proj: Tensor; // (C, I)
}

export interface MoeParams {
  /** routing settings travel with the weights, so decoding's mlpBlock(L, x) needs no config */
  cfg: MoeConfig;
  gate: Tensor; // (E, C) the router
  experts: ExpertParams[];
  shared: ExpertParams | null;
  sharedGate: Tensor | null; // (1, C) Qwen2-MoE's shared_expert_gate
}

type Obj = Record<string, unknown>;

/** Our own models' MoE keys (model_type llama, --model files). */
export const OUR_MOE_KEYS = [
  "num_experts",
  "num_experts_per_tok",
  "moe_intermediate_size",
  "n_shared_experts",
  "norm_topk_prob",
  "router_aux_loss_coef",
  "decoder_sparse_step",
  "mlp_only_layers",
];

const int = (o: Obj, k: string, bad: (m: string) => Error, min: number, dflt?: number): number => {
  const v = o[k] ?? dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw bad(`${k} must be a whole number ≥ ${min}${v === undefined ? " (it is required for experts)" : ""}`);
  return v;
};
const num = (o: Obj, k: string, bad: (m: string) => Error, dflt: number): number => {
  const v = o[k] ?? dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw bad(`${k} must be a number ≥ 0`);
  return v;
};
const bool = (o: Obj, k: string, bad: (m: string) => Error, dflt: boolean): boolean => {
  const v = o[k] ?? dflt;
  if (typeof v !== "boolean") throw bad(`${k} must be true or false`);
  return v;
};

/** Our models' experts (Qwen2-MoE naming; null: dense). */
export function parseOurMoe(o: Obj, layers: number, bad: (m: string) => Error): MoeConfig | null {
  if (o.num_experts === undefined || o.num_experts === null || o.num_experts === 0) return null;
  const experts = int(o, "num_experts", bad, 1);
  const topK = int(o, "num_experts_per_tok", bad, 1);
  if (topK > experts) throw bad(`num_experts_per_tok ${topK} is more than num_experts ${experts}`);
  const step = int(o, "decoder_sparse_step", bad, 1, 1);
  const only = o.mlp_only_layers ?? [];
  if (!Array.isArray(only) || only.some((l) => !Number.isInteger(l) || l < 0 || l >= layers))
    throw bad(`mlp_only_layers must list layer numbers below ${layers}`);
  const intermediate = int(o, "moe_intermediate_size", bad, 1);
  return {
    experts,
    topK,
    intermediate,
    sharedIntermediate: int(o, "n_shared_experts", bad, 0, 0) * intermediate,
    sharedGate: false,
    route: { norm: bool(o, "norm_topk_prob", bad, false), scale: 1 },
    auxCoef: num(o, "router_aux_loss_coef", bad, 0.001),
    auxKind: "qwen",
    // transformers' Qwen2-MoE: sparse where (l + 1) % decoder_sparse_step == 0 and not in mlp_only_layers
    layers: Array.from({ length: layers }, (_, l) => !only.includes(l) && (l + 1) % step === 0),
  };
}

/** Qwen2-MoE's config keys (beyond ours: its gated shared expert and output_router_logits). */
export const QWEN_MOE_KEYS = [
  "num_experts",
  "num_experts_per_tok",
  "moe_intermediate_size",
  "shared_expert_intermediate_size",
  "norm_topk_prob",
  "router_aux_loss_coef",
  "output_router_logits",
  "decoder_sparse_step",
  "mlp_only_layers",
];

/** Qwen2-MoE's experts (transformers' Qwen2MoeConfig; null: num_experts 0, every MLP dense). */
export function parseQwenMoe(o: Obj, layers: number, bad: (m: string) => Error): MoeConfig | null {
  const m = parseOurMoe({ ...o, n_shared_experts: 0 }, layers, bad);
  if (!m) return null;
  return {
    ...m,
    sharedIntermediate: int(o, "shared_expert_intermediate_size", bad, 0, 0),
    sharedGate: true,
    // transformers adds the load-balancing loss only when output_router_logits is true (default false)
    auxCoef: bool(o, "output_router_logits", bad, false) ? num(o, "router_aux_loss_coef", bad, 0.001) : 0,
  };
}

/** DeepSeek-V2's experts (null: dense). Variants we do not compute are refused by name. */
export function parseDeepseekMoe(o: Obj, layers: number, bad: (m: string) => Error): MoeConfig | null {
  const E = o.n_routed_experts;
  if (E === undefined || E === null || E === 0) return null;
  const dense = int(o, "first_k_dense_replace", bad, 0, 0);
  const freq = int(o, "moe_layer_freq", bad, 1, 1);
  const which = Array.from({ length: layers }, (_, l) => l >= dense && l % freq === 0);
  if (!which.some(Boolean)) return null;
  const topk = o.topk_method ?? "greedy";
  if (topk !== "greedy")
    throw bad(`topk_method ${JSON.stringify(topk)}: only "greedy" top-k is supported (not group-limited or noaux_tc)`);
  if ((o.scoring_func ?? "softmax") !== "softmax")
    throw bad(`scoring_func ${JSON.stringify(o.scoring_func)}: only "softmax" routing is supported`);
  if (o.seq_aux === true) throw bad("seq_aux true: the per-sequence auxiliary loss is not supported (give false)");
  if ((o.ep_size ?? 1) !== 1) throw bad(`ep_size ${JSON.stringify(o.ep_size)}: expert parallelism is not supported`);
  const experts = int(o, "n_routed_experts", bad, 1);
  const topK = int(o, "num_experts_per_tok", bad, 1);
  if (topK > experts) throw bad(`num_experts_per_tok ${topK} is more than n_routed_experts ${experts}`);
  const intermediate = int(o, "moe_intermediate_size", bad, 1);
  // DeepSeek-V2's gate: renormalize when top_k > 1 and norm_topk_prob, else scale by routed_scaling_factor
  const norm = topK > 1 && bool(o, "norm_topk_prob", bad, false);
  return {
    experts,
    topK,
    intermediate,
    sharedIntermediate: int(o, "n_shared_experts", bad, 0, 0) * intermediate,
    sharedGate: false,
    route: { norm, scale: norm ? 1 : num(o, "routed_scaling_factor", bad, 1) },
    auxCoef: num(o, "aux_loss_alpha", bad, 0.001),
    auxKind: "deepseek",
    layers: which,
  };
}

const sharedName = (m: MoeConfig) => (m.sharedGate ? "mlp.shared_expert" : "mlp.shared_experts");

/** An MoE layer's weights: names under model.layers.{l}. and shapes, in checkpoint order. */
export function moeShapes(m: MoeConfig, C: number): [string, number[]][] {
  const I = m.intermediate;
  const out: [string, number[]][] = [["mlp.gate.weight", [m.experts, C]]];
  for (let e = 0; e < m.experts; e++)
    out.push(
      [`mlp.experts.${e}.gate_proj.weight`, [I, C]],
      [`mlp.experts.${e}.up_proj.weight`, [I, C]],
      [`mlp.experts.${e}.down_proj.weight`, [C, I]],
    );
  const S = m.sharedIntermediate;
  const sh = sharedName(m);
  if (S)
    out.push([`${sh}.gate_proj.weight`, [S, C]], [`${sh}.up_proj.weight`, [S, C]], [`${sh}.down_proj.weight`, [C, S]]);
  if (m.sharedGate) out.push(["mlp.shared_expert_gate.weight", [1, C]]);
  return out;
}

/** The record from name → tensor (names relative to the layer). */
export function moeFromNamed(m: MoeConfig, C: number, get: (name: string, shape: number[]) => Tensor): MoeParams {
  const s = new Map(moeShapes(m, C));
  const g = (name: string) => get(name, s.get(name)!);
  const expert = (p: string): ExpertParams => ({
    gate_proj: g(`${p}.gate_proj.weight`),
    up_proj: g(`${p}.up_proj.weight`),
    down_proj: g(`${p}.down_proj.weight`),
  });
  return {
    cfg: m,
    gate: g("mlp.gate.weight"),
    experts: Array.from({ length: m.experts }, (_, e) => expert(`mlp.experts.${e}`)),
    shared: m.sharedIntermediate ? expert(sharedName(m)) : null,
    sharedGate: m.sharedGate ? g("mlp.shared_expert_gate.weight") : null,
  };
}

/** name (relative to the layer) → tensor. */
export function moeNamed(p: MoeParams): [string, Tensor][] {
  const out: [string, Tensor][] = [["mlp.gate.weight", p.gate]];
  const ex = (pre: string, x: ExpertParams) =>
    out.push(
      [`${pre}.gate_proj.weight`, x.gate_proj],
      [`${pre}.up_proj.weight`, x.up_proj],
      [`${pre}.down_proj.weight`, x.down_proj],
    );
  p.experts.forEach((x, e) => ex(`mlp.experts.${e}`, x));
  if (p.shared) ex(sharedName(p.cfg), p.shared);
  if (p.sharedGate) out.push(["mlp.shared_expert_gate.weight", p.sharedGate]);
  return out;
}

// ---- routing statistics: what the auxiliary loss and the load metrics need ----

export interface Routing {
  cfg: MoeConfig;
  probs: Tensor; // (N, E) the router's probabilities (differentiable)
  counts: Tensor; // (E) slots routed to each expert
  N: number;
}

let sink: Routing[] | null = null;

/** Run fn (a forward) and return what every MoE layer routed in it. */
export function collectRouting<T>(fn: () => T): { value: T; routing: Routing[] } {
  const was = sink;
  const routing: Routing[] = [];
  sink = routing;
  try {
    return { value: fn(), routing };
  } finally {
    sink = was;
  }
}

/** Σ_t Σ_e probs[t, e] · w[e] for a non-differentiable weight w (E): a (1) tensor. */
const weightedProbs = (r: Routing, w: Tensor) =>
  reshape(sumRows(reshape(matmul(r.probs, reshape(w, [r.cfg.experts, 1])), [1, r.N])), [1]);

/**
 * The load-balancing loss coef · E · Σ_e f_e · P_e (Switch Transformers), differentiable in the
 * router's probabilities P (the fractions f count discrete choices and carry no gradient):
 * qwen   f_e, P_e over every MoE layer's N tokens together (L·N rows), f_e = routed slots / (L·N);
 * deepseek per layer, f_e = slots / (N·K), summed over the layers. null: no MoE layer or coef 0.
 */
export function auxLoss(routing: Routing[]): Tensor | null {
  if (!routing.length || routing[0]!.cfg.auxCoef === 0) return null;
  const m = routing[0]!.cfg;
  const E = m.experts;
  let total: Tensor | null = null;
  const plus = (t: Tensor) => (total = total ? add(total, t) : t);
  if (m.auxKind === "qwen") {
    let F = routing[0]!.counts;
    for (const r of routing.slice(1)) F = add(F, r.counts);
    const rows = routing.reduce((n, r) => n + r.N, 0);
    for (const r of routing) plus(weightedProbs(r, F));
    return scale(total!, (m.auxCoef * E) / (rows * rows));
  }
  for (const r of routing) plus(scale(weightedProbs(r, r.counts), (m.auxCoef * E) / (r.N * m.topK * r.N)));
  return total;
}

/** The largest share of a layer's routed slots one expert got, over the MoE layers (1/E: balanced). */
export async function expertLoadMax(routing: Routing[]): Promise<number> {
  let top = 0;
  for (const r of routing) {
    const c = (await r.counts.toArray()) as Float32Array;
    top = Math.max(top, Math.max(...c) / (r.N * r.cfg.topK));
  }
  return top;
}

// ---- the layer ----

/** residual + shared(x) + the routed experts' weighted outputs, for normed x (N, C). */
export function moeMlp(p: MoeParams, x: Tensor, residual?: Tensor): Tensor {
  const m = p.cfg;
  const C = x.shape[x.shape.length - 1]!;
  const N = x.size / C;
  const x2 = reshape(x, [N, C]);
  const res = residual && reshape(residual, [N, C]);
  const sh = p.shared;
  const base = !sh
    ? res
    : p.sharedGate
      ? sharedGate(
          swigluMlp(x2, sh.gate_proj, sh.up_proj, sh.down_proj),
          matmul(x2, p.sharedGate, { transB: true }),
          res,
        )
      : swigluMlp(x2, sh.gate_proj, sh.up_proj, sh.down_proj, { residual: res });
  const probs = routerSoftmax(matmul(x2, p.gate, { transB: true }));
  const { weights, experts } = moeTopk(probs, m.topK, m.route);
  const plan = moePlan(experts, m.experts);
  sink?.push({ cfg: m, probs, counts: plan.counts, N });
  const xs = moeGather(x2, plan);
  const stack = (k: keyof ExpertParams) => stackExperts(p.experts.map((e) => e[k]));
  const h = swiglu(groupedMatmul(xs, stack("gate_proj"), plan), groupedMatmul(xs, stack("up_proj"), plan));
  return reshape(moeCombine(groupedMatmul(h, stack("down_proj"), plan), weights, plan, base), x.shape);
}
