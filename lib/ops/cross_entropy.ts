// Softmax cross-entropy (label smoothing, ignore index, mean over the rows that count or over a given
// normalizer) and per-token log-probabilities of given targets, fused over the vocabulary. Their
// backward overwrites the logits with the gradient: the logits tensor holds dlogits after backward,
// so training never keeps a second vocabulary-sized tensor (pass inplace: false to keep the logits).
// Logits over one storage binding (N rows of a 151,936-token vocabulary) go in windows of rows.
// Kernels: cross_entropy.wgsl, loss_reduce.wgsl.
import { pipeline, dispatch, copyBuffer, rowRanges, span, type Scalar } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { rowGrid } from "../gpu/grid.ts";
import { clone } from "./elementwise.ts";

export const IGNORE_INDEX = -100;

export interface CrossEntropyOpts {
  labelSmoothing?: number;
  ignoreIndex?: number;
  /** divide the summed loss by this instead of the number of counted rows (0 = count) */
  normalizer?: number;
  inplace?: boolean;
}

// ---- CPU references (f64) ----
function lseRow(z: Float32Array, r: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, z[r * V + v]!);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(z[r * V + v]! - m);
  return m + Math.log(s);
}

export function crossEntropyRef(
  z: Float32Array,
  t: ArrayLike<number>,
  N: number,
  V: number,
  { labelSmoothing: eps = 0, ignoreIndex = IGNORE_INDEX, normalizer = 0 }: CrossEntropyOpts = {},
) {
  let total = 0,
    count = 0;
  const dz = new Float32Array(N * V);
  const rows: number[] = [];
  for (let r = 0; r < N; r++) {
    if (t[r] === ignoreIndex) continue;
    const l = lseRow(z, r, V);
    let sz = 0;
    for (let v = 0; v < V; v++) sz += z[r * V + v]!;
    total += l - (1 - eps) * z[r * V + t[r]!]! - (eps / V) * sz;
    count++;
    rows.push(r);
  }
  const d = normalizer > 0 ? normalizer : count;
  for (const r of rows) {
    const l = lseRow(z, r, V);
    for (let v = 0; v < V; v++)
      dz[r * V + v] = (Math.exp(z[r * V + v]! - l) - (1 - eps) * (v === t[r] ? 1 : 0) - eps / V) / d;
  }
  return { loss: d > 0 ? total / d : 0, dz };
}

export function logprobsRef(z: Float32Array, t: ArrayLike<number>, N: number, V: number, dout?: Float32Array) {
  const lp = new Float32Array(N),
    dz = new Float32Array(N * V);
  for (let r = 0; r < N; r++) {
    if (t[r] === IGNORE_INDEX) continue;
    const l = lseRow(z, r, V);
    lp[r] = z[r * V + t[r]!]! - l;
    if (dout)
      for (let v = 0; v < V; v++) dz[r * V + v] = dout[r]! * ((v === t[r] ? 1 : 0) - Math.exp(z[r * V + v]! - l));
  }
  return { lp, dz };
}

// ---- GPU ----
function check(logits: Tensor, targets: Tensor): [number, number] {
  if (logits.shape.length !== 2) throw new Error(`cross entropy: logits must be (N, V), got [${logits.shape}]`);
  const [N, V] = logits.shape as [number, number];
  if (targets.size !== N || targets.dtype !== "i32")
    throw new Error(`cross entropy: need ${N} i32 targets, got ${targets.dtype}[${targets.shape}]`);
  return [N, V];
}

interface Buffers {
  targets: Tensor;
  lse: Tensor;
  z: Tensor;
  rows: Tensor;
  stats: Tensor;
}

/** One pass of kernels/cross_entropy.wgsl over the N rows: MODE as its header says. */
function pass(mode: number, N: number, params: Scalar[], b: Buffers): void {
  const V = params[1] as number;
  for (const [r0, rows] of rowRanges(N, V, b.z.bytes)) {
    const z = span(b.z.buffer, r0 * V, rows * V);
    dispatch(
      pipeline("cross_entropy", { MODE: mode }),
      [b.targets.buffer, b.lse.buffer, z.binding, b.rows.buffer, b.stats.buffer],
      [N, ...params.slice(1), r0, r0 * V - z.base],
      rowGrid(rows),
    );
  }
}

/** Where a backward pass writes the logits' gradient: over the logits themselves unless told not to. */
function gradBuffer(logits: Tensor, inplace: boolean | undefined): Tensor {
  return inplace === false ? clone(logits) : Tensor.view(logits, logits.shape);
}

/** Mean cross-entropy → a (1) tensor. */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOpts = {}): Tensor {
  const [N, V] = check(logits, targets);
  const eps = o.labelSmoothing ?? 0,
    ignore = o.ignoreIndex ?? IGNORE_INDEX;
  const lse = Tensor.empty([N]),
    rows = Tensor.empty([N]),
    stats = Tensor.empty([2]),
    loss = Tensor.empty([1]);
  const params: Scalar[] = [N, V, [eps, "f32"], [ignore, "i32"]];
  pass(0, N, params, { targets, lse, z: logits, rows, stats });
  dispatch(
    pipeline("loss_reduce"),
    [rows.buffer, targets.buffer, loss.buffer, stats.buffer],
    [N, V, [o.normalizer ?? 0, "f32"], [ignore, "i32"]],
    [1],
  );
  return record(loss, "cross_entropy", [logits], (dloss) => {
    const z = gradBuffer(logits, o.inplace);
    copyBuffer(dloss.buffer, 0, stats.buffer, 0, 4);
    pass(1, N, params, { targets, lse, z, rows, stats });
    return [z];
  });
}

/** log p(target_i) per row → (N); IGNORE rows give 0. */
export function logprobs(logits: Tensor, targets: Tensor, o: { inplace?: boolean } = {}): Tensor {
  const [N, V] = check(logits, targets);
  const lse = Tensor.empty([N]),
    out = Tensor.empty([N]),
    stats = Tensor.empty([2]);
  const params: Scalar[] = [N, V, [0, "f32"], [IGNORE_INDEX, "i32"]];
  pass(2, N, params, { targets, lse, z: logits, rows: out, stats });
  return record(out, "logprobs", [logits], (dout) => {
    const z = gradBuffer(logits, o.inplace);
    const d = clone(dout); // MODE 3 reads dout through the read_write row binding
    pass(3, N, params, { targets, lse, z, rows: d, stats });
    return [z];
  });
}
