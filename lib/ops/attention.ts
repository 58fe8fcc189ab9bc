// Causal grouped-query attention (Ainslie et al. 2023), fused flash-style forward and backward:
// no T×Tk matrix in global memory, probabilities recomputed in the backward from the log-sum-exp.
// Query head h reads kv head h / (H / KV). A key j is visible to query i when
//   lo_i <= j <= qOffset + i,   lo_i = max(qOffset + i - pos_i, qOffset + i - window + 1 if window > 0)
// so positions that restart at a document start also stop attention across documents, and a sliding
// window (Mistral's `sliding_window`: transformers lets query i see key j when i - j < window) keeps
// the last `window` keys. Inside a document the index distance qOffset + i - j is the position
// difference; with a cache the query's index is qOffset + i and cached key j's is j.
// Kernels: attention_forward.wgsl, attention_backward_dq.wgsl, attention_backward_dkv.wgsl (f32), and
// their _sgmat twins on subgroup matrices for f16 precision (--precision mixed); generation's
// decoding step over a batch of sequences' caches: attention_decode.wgsl, attention_decode_append.wgsl.
import { gpu, pipeline, dispatch, scratchBuffer, type Defines } from "../gpu/index.ts";
import { strideGrid } from "../gpu/grid.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { matmulPrecision, sgmatTarget, type SgmatTarget } from "./_matmul_variants.ts";

export interface AttnDims {
  B: number;
  T: number;
  Tk: number;
  H: number;
  KV: number;
  D: number; // query/key head dim
  DV?: number; // value head dim (default D; differs in multi-head latent attention)
  VS?: number; // elements between two tokens' values (default DV)
  qOffset: number;
  scale: number;
  window?: number | null; // sliding window: keys at most window - 1 tokens back; 0, null or absent: none
}

// ---- CPU references (f64 inside) ----
function range(pos: ArrayLike<number>, b: number, i: number, d: AttnDims): [number, number] {
  const hi = d.qOffset + i;
  const lo = Math.max(hi - pos[b * d.T + i]!, d.window ? hi - d.window + 1 : 0, 0);
  return [lo, Math.min(hi, d.Tk - 1)];
}

/** Every (batch, head, query): its visible key range and the softmax probabilities over it (f64). */
function eachQuery(
  q: Float32Array,
  k: Float32Array,
  pos: ArrayLike<number>,
  d: AttnDims,
  f: (b: number, h: number, g: number, i: number, lo: number, P: number[], lse: number) => void,
): void {
  const { B, T, Tk, H, KV, D, scale } = d;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (let i = 0; i < T; i++) {
        const [lo, hi] = range(pos, b, i, d);
        const qb = ((b * T + i) * H + h) * D;
        const s: number[] = [];
        for (let j = lo; j <= hi; j++) {
          const kb = ((b * Tk + j) * KV + g) * D;
          let x = 0;
          for (let c = 0; c < D; c++) x += q[qb + c]! * k[kb + c]!;
          s.push(x * scale);
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        f(
          b,
          h,
          g,
          i,
          lo,
          e.map((x) => x / z),
          m + Math.log(z),
        );
      }
    }
}

export function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, pos: ArrayLike<number>, d: AttnDims) {
  const { T, Tk, H, KV } = d;
  const DV = d.DV ?? d.D;
  const o = new Float32Array(d.B * T * H * DV),
    lse = new Float32Array(d.B * H * T);
  eachQuery(q, k, pos, d, (b, h, g, i, lo, P, l) => {
    lse[(b * H + h) * T + i] = l;
    const ob = ((b * T + i) * H + h) * DV;
    for (let c = 0; c < DV; c++) {
      let acc = 0;
      P.forEach((p, jj) => (acc += p * v[((b * Tk + lo + jj) * KV + g) * DV + c]!));
      o[ob + c] = acc;
    }
  });
  return { o, lse };
}

export function attentionBackwardRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  pos: ArrayLike<number>,
  dout: Float32Array,
  d: AttnDims,
) {
  const { T, Tk, H, KV, D, scale } = d;
  const DV = d.DV ?? D;
  const dq = new Float64Array(q.length),
    dk = new Float64Array(k.length),
    dv = new Float64Array(v.length);
  eachQuery(q, k, pos, d, (b, h, g, i, lo, P) => {
    const qb = ((b * T + i) * H + h) * D,
      ob = ((b * T + i) * H + h) * DV;
    // dP_j = dO·v_j; dS_j = P_j (dP_j - Σ_j' P_j' dP_j')
    const dP = P.map((_, jj) => {
      const vb = ((b * Tk + lo + jj) * KV + g) * DV;
      let x = 0;
      for (let c = 0; c < DV; c++) x += dout[ob + c]! * v[vb + c]!;
      return x;
    });
    const dot = P.reduce((a, p, jj) => a + p * dP[jj]!, 0);
    P.forEach((p, jj) => {
      const kb = ((b * Tk + lo + jj) * KV + g) * D,
        vb = ((b * Tk + lo + jj) * KV + g) * DV;
      const ds = p * (dP[jj]! - dot) * scale;
      for (let c = 0; c < D; c++) {
        dq[qb + c] += ds * k[kb + c]!;
        dk[kb + c] += ds * q[qb + c]!;
      }
      for (let c = 0; c < DV; c++) dv[vb + c] += p * dout[ob + c]!;
    });
  });
  return { dq: Float32Array.from(dq), dk: Float32Array.from(dk), dv: Float32Array.from(dv) };
}

// ---- GPU: training's forward and backward (and generation's prefill over a cache) ----
// Two kernel families with the same work split (FlashAttention-2): f32 register tiles
// (attention_forward, attention_backward_dq, attention_backward_dkv), and, for f16-precision runs
// where BUNLM_SUBGROUP_MATRIX allows it, their _sgmat twins, whose products are subgroup-matrix tiles
// (f16 operands, f32 accumulation: tensor cores natively, the exact emulation elsewhere).

type Limits = Record<string, number>;

/** One launch: a kernel, its defines and its grid (exported for the compile checks on Dawn's null adapter). */
export interface AttnLaunch {
  kernel: string;
  defines: Defines;
  grid: [number, number, number];
}

// The f32 kernels' threads that share a column block: consecutive, so that on lavapipe's 8-lane SIMD
// a K or V read is one broadcast (any value works on GPUs).
const RT = 8;

/**
 * The fewest column blocks (a power of two) that leave a thread at most 8 of `width` columns; at least
 * 2, so that a workgroup has 16 threads or more: at 8 (one lavapipe SIMD group), llvmpipe unrolls the
 * threads' loops whole, and a backward kernel compiles for 20 s instead of 3.
 */
function colBlocks(width: number): number {
  let n = 2;
  while (Math.ceil(width / n) > 8) n *= 2;
  return n;
}

// Bytes beyond each kernel's arrays: its scalars, and Dawn's rounding of every workgroup variable
// up to 16 bytes.
const SLACK = 256;

/** Whether a tile's workgroup memory (bytes) and size (threads) fit the adapter. */
function fits(bytes: number, threads: number, limits: Limits): boolean {
  const maxThreads = Math.min(limits.maxComputeInvocationsPerWorkgroup ?? 256, limits.maxComputeWorkgroupSizeX ?? 256);
  return bytes <= (limits.maxComputeWorkgroupStorageSize ?? 16384) && threads <= maxThreads;
}

function noTile(what: string, d: AttnDims): Error {
  return new Error(
    `attention: ${what} for head dims ${d.D} (keys) and ${d.DV ?? d.D} (values) needs more workgroup memory than this adapter has`,
  );
}

// Tile sizes most promising first (measured on lavapipe, B 1, T 256, 6 heads, 2 kv heads, head dim
// 64); later ones fit large head dims into small workgroup memories.
const F32_FORWARD_TILES = [
  [4, 32],
  [4, 16],
  [2, 16],
  [1, 16],
  [1, 8],
  [1, 4],
] as const; // [TR, BK]
const F32_DQ_TILES = F32_FORWARD_TILES; // [TR, BK]
const F32_DKV_TILES = [
  [4, 16],
  [4, 8],
  [2, 8],
  [1, 8],
  [1, 4],
] as const; // [TR, BQ]

/** The f32 forward over BQ = 8·TR queries per workgroup. */
export function f32Forward(d: AttnDims, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const NVG = colBlocks(DV),
    TV = Math.ceil(DV / NVG);
  for (const [TR, BK] of F32_FORWARD_TILES) {
    const BQ = RT * TR;
    const bytes = 4 * (d.D * BQ + d.D * BK + BK * NVG * TV + BK * BQ + 4 * BQ) + SLACK;
    if (!fits(bytes, RT * NVG, limits)) continue;
    const TC = Math.max(1, Math.min(4, BK / NVG));
    return {
      kernel: "attention_forward",
      defines: { D: d.D, DV, VS: d.VS ?? DV, RT, TR, BK, TC, TV, NVG },
      grid: [Math.ceil(d.T / BQ), d.H, d.B],
    };
  }
  throw noTile("the forward", d);
}

/** The f32 query-side backward, over the forward's query blocks. */
export function f32BackwardDq(d: AttnDims, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const NDG = colBlocks(d.D),
    TD = Math.ceil(d.D / NDG);
  for (const [TR, BK] of F32_DQ_TILES) {
    const BQ = RT * TR;
    const bytes = 4 * (d.D * BQ + DV * BQ + NDG * TD * BK + DV * BK + BK * BQ + 3 * BQ) + SLACK;
    if (!fits(bytes, RT * NDG, limits)) continue;
    const TC = Math.max(1, Math.min(4, BK / NDG));
    return {
      kernel: "attention_backward_dq",
      defines: { D: d.D, DV, RT, TR, BK, TC, TD, NDG },
      grid: [Math.ceil(d.T / BQ), d.H, d.B],
    };
  }
  throw noTile("the query-side backward", d);
}

/** The f32 key/value-side backward over BK = 8·TR keys per workgroup. */
export function f32BackwardDkv(d: AttnDims, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const NG = Math.max(colBlocks(d.D), colBlocks(DV)),
    TD = Math.ceil(d.D / NG),
    TV = Math.ceil(DV / NG);
  for (const [TR, BQ] of F32_DKV_TILES) {
    const BK = RT * TR;
    const bytes = 4 * (d.D * BK + DV * BK + NG * TD * BQ + NG * TV * BQ + 2 * BQ * BK + 3 * BQ) + SLACK;
    if (!fits(bytes, RT * NG, limits)) continue;
    const TC = Math.max(1, Math.min(4, BQ / NG));
    return {
      kernel: "attention_backward_dkv",
      defines: { D: d.D, DV, RT, TR, BQ, TC, TD, TV, NG },
      grid: [Math.ceil(d.Tk / BK), d.KV, d.B],
    };
  }
  throw noTile("the key-side backward", d);
}

// ---- subgroup matrices ----

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;
const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

/** Bytes of the emulation's operand copies (subgroup_matrix_emulate.wgsl), 0 natively. */
function emulationBytes(t: SgmatTarget, SG: number): number {
  return t.path === "emulate" ? 2 * SG * (t.M * t.K + t.K * t.N) : 0;
}

// [subgroups, keys or queries per tile], most promising first: more subgroups share each K/V (Q/dO)
// tile, longer tiles pay fewer barriers; the later ones fit small workgroup memories (16 KiB).
const SGMAT_TILES = [
  [4, 64],
  [4, 32],
  [2, 32],
  [2, 16],
  [1, 16],
] as const;

/** The forward on subgroup matrices: SG·M queries per workgroup, key tiles of BK. */
export function sgmatForward(d: AttnDims, t: SgmatTarget, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const DP = roundUp(d.D, t.K),
    DVP = roundUp(DV, t.N),
    step = (t.N * t.K) / gcd(t.N, t.K);
  for (const [SG, tile] of SGMAT_TILES) {
    const BQ = SG * t.M,
      BK = roundUp(tile, step);
    const bytes = 2 * (BQ * (DP + BK) + BK * (DP + DVP)) + 4 * BQ * BK + 4 * 5 * BQ + SLACK + emulationBytes(t, SG);
    if (!fits(bytes, SG * t.subgroupSize, limits)) continue;
    return {
      kernel: "attention_forward_sgmat",
      defines: { ...sgmatShape(t), D: d.D, DV, VS: d.VS ?? DV, DP, DVP, SG, BK },
      grid: [Math.ceil(d.T / BQ), d.H, d.B],
    };
  }
  throw noTile("the forward on subgroup matrices", d);
}

/** The query-side backward on subgroup matrices, over the forward's query blocks. */
export function sgmatBackwardDq(d: AttnDims, t: SgmatTarget, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const step = (t.N * t.K) / gcd(t.N, t.K);
  const DP = roundUp(d.D, step),
    DVP = roundUp(DV, t.K);
  for (const [SG, tile] of SGMAT_TILES) {
    const BQ = SG * t.M,
      BK = roundUp(tile, step);
    const bytes =
      2 * (BQ * (DP + DVP + BK) + BK * (DP + DVP)) + 8 * BQ * BK + 4 * 3 * BQ + SLACK + emulationBytes(t, SG);
    if (!fits(bytes, SG * t.subgroupSize, limits)) continue;
    return {
      kernel: "attention_backward_dq_sgmat",
      defines: { ...sgmatShape(t), D: d.D, DV, DP, DVP, SG, BK },
      grid: [Math.ceil(d.T / BQ), d.H, d.B],
    };
  }
  throw noTile("the query-side backward on subgroup matrices", d);
}

/** The key-side backward on subgroup matrices: SG·M keys per workgroup, query tiles of BQ. */
export function sgmatBackwardDkv(d: AttnDims, t: SgmatTarget, limits: Limits): AttnLaunch {
  const DV = d.DV ?? d.D;
  const step = (t.N * t.K) / gcd(t.N, t.K);
  const DP = roundUp(d.D, step),
    DVP = roundUp(DV, step);
  for (const [SG, tile] of SGMAT_TILES) {
    const BK = SG * t.M,
      BQ = roundUp(tile, step);
    const bytes =
      2 * (BK * (DP + DVP + 2 * BQ) + BQ * (DP + DVP)) + 8 * BK * BQ + 4 * 3 * BQ + SLACK + emulationBytes(t, SG);
    if (!fits(bytes, SG * t.subgroupSize, limits)) continue;
    return {
      kernel: "attention_backward_dkv_sgmat",
      defines: { ...sgmatShape(t), D: d.D, DV, DP, DVP, SG, BQ },
      grid: [Math.ceil(d.Tk / BK), d.KV, d.B],
    };
  }
  throw noTile("the key-side backward on subgroup matrices", d);
}

function sgmatShape(t: SgmatTarget): Defines {
  return { SUBGROUP_MATRIX: t.path, SGM_M: t.M, SGM_N: t.N, SGM_K: t.K, SGM_SUBGROUP_SIZE: t.subgroupSize };
}

/** Where f16-precision attention runs on subgroup matrices (as its matmuls do), or null for f32 tiles. */
function sgmat(): SgmatTarget | null {
  return matmulPrecision() === "f16" ? sgmatTarget() : null;
}

/** The kernels' Params (common/attention_keys.wgsl). */
function scalars(d: AttnDims) {
  return [d.B, d.T, d.Tk, d.H, d.KV, d.qOffset, [d.scale, "f32"], windowOf(d.window)] as any[];
}

/** A window as the kernels take it: 0 for none; a count of keys otherwise. */
function windowOf(w: number | null | undefined): number {
  if (w === undefined || w === null || w === 0) return 0;
  if (!Number.isInteger(w) || w < 0 || w > 0x7fffffff)
    throw new Error(`attention: window ${w} is not a count of keys (0 for none)`);
  return w;
}

/** One launch, its buffers in the kernel's binding order (see the kernel's header). */
export function dispatchAttention(l: AttnLaunch, buffers: GPUBuffer[], d: AttnDims): void {
  dispatch(pipeline(l.kernel, l.defines), buffers, scalars(d), l.grid);
}

/** The forward: on subgroup matrices for target t, else f32 tiles; lse's rows `ls` elements apart. */
export function forwardLaunch(d: AttnDims, t: SgmatTarget | null, limits: Limits, ls: number): AttnLaunch {
  const l = t ? sgmatForward(d, t, limits) : f32Forward(d, limits);
  l.defines.LS = ls;
  return l;
}

/** The backward's two launches, to run in this order (dkv reads the delta dq writes). */
export function backwardLaunches(d: AttnDims, t: SgmatTarget | null, limits: Limits): AttnLaunch[] {
  return t
    ? [sgmatBackwardDq(d, t, limits), sgmatBackwardDkv(d, t, limits)]
    : [f32BackwardDq(d, limits), f32BackwardDkv(d, limits)];
}

function forwardInto(o: Tensor, lse: Tensor, ls: number, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, d: AttnDims) {
  const l = forwardLaunch(d, sgmat(), gpu().limits, ls);
  dispatchAttention(l, [q.buffer, k.buffer, v.buffer, pos.buffer, o.buffer, lse.buffer], d);
}

/** Forward only, into given outputs (o (B, T, H, DV), lse (B, H, T)): generation with a KV cache. */
export function attentionInto(o: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, d: AttnDims): void {
  forwardInto(o, lse, 1, q, k, v, pos, d);
}

/**
 * q: (B, T, H, D), k: (B, Tk, KV, D), v: (B, Tk, KV, DV), pos: (B·T) i32 → (B, T, H, DV).
 * scale defaults to 1/sqrt(D); window (a sliding window, keys at most window - 1 back) to 0, none.
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  pos: Tensor,
  opts: { qOffset?: number; scale?: number; window?: number | null } = {},
): Tensor {
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const [Bk, Tk, KV, Dk] = k.shape as [number, number, number, number];
  const DV = v.shape[3]!;
  if (
    q.shape.length !== 4 ||
    k.shape.length !== 4 ||
    Bk !== B ||
    Dk !== D ||
    v.shape.length !== 4 ||
    v.shape.slice(0, 3).join() !== k.shape.slice(0, 3).join()
  )
    throw new Error(
      `attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit (B, T, H, D) / (B, Tk, KV, D) / (B, Tk, KV, DV)`,
    );
  if (H % KV) throw new Error(`attention: ${H} query heads do not divide into ${KV} kv heads`);
  if (pos.size !== B * T || pos.dtype !== "i32") throw new Error("attention: need one i32 position per query token");
  const d: AttnDims = {
    B,
    T,
    Tk,
    H,
    KV,
    D,
    DV,
    qOffset: opts.qOffset ?? 0,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    window: windowOf(opts.window),
  };
  const o = Tensor.empty([B, T, H, DV]);
  // per row the forward's lse, then the backward's delta = dO·O: one binding in the backward kernels
  const stats = Tensor.empty([B, H, T, 2]);
  forwardInto(o, stats, 2, q, k, v, pos, d);
  return record(o, "attention", [q, k, v], (dout) => {
    const [ldq, ldkv] = backwardLaunches(d, sgmat(), gpu().limits);
    const dq = Tensor.empty(q.shape),
      dk = Tensor.empty(k.shape),
      dv = Tensor.empty(v.shape);
    dispatchAttention(
      ldq!,
      [q.buffer, k.buffer, v.buffer, pos.buffer, o.buffer, dout.buffer, stats.buffer, dq.buffer],
      d,
    );
    dispatchAttention(
      ldkv!,
      [q.buffer, k.buffer, v.buffer, pos.buffer, dout.buffer, stats.buffer, dk.buffer, dv.buffer],
      d,
    );
    return [dq, dk, dv];
  });
}

// ---- decoding: one new query per sequence over its own cache rows (attention_decode.wgsl) ----

/**
 * A batch of B decoding rows: row b attends over cache rows span[2b] .. span[2b] + span[2b+1] - 1,
 * the last `window` of them with a sliding window (the query is the span's last row).
 * latent: the cache row is [latent (DV), RoPE key (D - DV)] and queries arrive as [no-RoPE (dn),
 * RoPE (D - DV)]; kv_b_proj (H, dn + dout, DV) holds per head W_UK (dn rows), which maps the first part
 * into latent space, and W_UV (dout rows), which maps the output out of it (multi-head latent attention
 * with the up-projections absorbed).
 */
export interface DecodeDims {
  B: number;
  H: number;
  KV: number;
  D: number; // key width
  DV: number; // value width (latent: kv_lora_rank)
  VS: number; // elements between two cache rows' values, per kv head
  scale: number;
  window?: number | null; // sliding window: the last `window` rows of each span; 0, null or absent: all
  latent?: { dn: number; dout: number };
}

/** q (B, H, QW), k (rows, KV, D), v (rows, KV, VS), span (B, 2), wkv (latent) → o (B, H, DO); f64 inside. */
export function attentionDecodeRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  span: ArrayLike<number>,
  d: DecodeDims,
  wkv?: Float32Array,
): Float32Array {
  const { B, H, KV, D, DV, VS, scale, latent } = d;
  const dn = latent?.dn ?? 0,
    DO = latent?.dout ?? DV,
    QW = latent ? dn + D - DV : D;
  const o = new Float32Array(B * H * DO);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      const qb = (b * H + h) * QW;
      const qi = new Float64Array(D);
      for (let e = 0; e < D; e++) {
        if (!latent) qi[e] = q[qb + e]!;
        else if (e >= DV) qi[e] = q[qb + dn + e - DV]!;
        else for (let c = 0; c < dn; c++) qi[e] += q[qb + c]! * wkv![(h * (dn + DO) + c) * DV + e]!;
      }
      const count = span[2 * b + 1]!,
        n = d.window ? Math.min(count, d.window) : count,
        first = span[2 * b]! + count - n;
      const s: number[] = [];
      for (let j = 0; j < n; j++) {
        let x = 0;
        for (let e = 0; e < D; e++) x += qi[e]! * k[((first + j) * KV + g) * D + e]!;
        s.push(x * scale);
      }
      const m = Math.max(...s);
      const p = s.map((x) => Math.exp(x - m));
      const z = p.reduce((a, x) => a + x, 0);
      const out = new Float64Array(DV);
      p.forEach((pj, j) => {
        for (let e = 0; e < DV; e++) out[e] += (pj / z) * v[((first + j) * KV + g) * VS + e]!;
      });
      const ob = (b * H + h) * DO;
      for (let f = 0; f < DO; f++) {
        if (!latent) o[ob + f] = out[f]!;
        else {
          let x = 0;
          for (let e = 0; e < DV; e++) x += out[e]! * wkv![(h * (dn + DO) + dn + f) * DV + e]!;
          o[ob + f] = x;
        }
      }
    }
  return o;
}

/** cache (rows, CW) with row at[b], columns off.., set to src (B, W): the reference of cacheAppendInto. */
export function cacheAppendRef(cache: Float32Array, src: Float32Array, at: ArrayLike<number>, CW: number, off: number) {
  const W = src.length / at.length;
  for (let b = 0; b < at.length; b++) for (let c = 0; c < W; c++) cache[at[b]! * CW + off + c] = src[b * W + c]!;
}

/** Forward only, into o: the decoding rows' attention over their cache spans (span: (B, 2) u32). */
export function attentionDecodeInto(
  o: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  span: Tensor,
  d: DecodeDims,
  wkv?: Tensor,
): void {
  if (span.size !== 2 * d.B || span.dtype !== "u32")
    throw new Error("attentionDecode: need a u32 (first, count) per row");
  if (!!d.latent !== !!wkv) throw new Error("attentionDecode: latent attention takes kv_b_proj, and only it");
  const WG = 64;
  const dn = d.latent?.dn ?? 0;
  const defines = {
    D: d.D,
    DV: d.DV,
    VS: d.VS,
    QW: d.latent ? dn + d.D - d.DV : d.D,
    DN: dn,
    DO: d.latent?.dout ?? d.DV,
    LATENT: !!d.latent,
    WG,
    NDV: Math.ceil(d.DV / WG),
  };
  dispatch(
    pipeline("attention_decode", defines),
    [q.buffer, k.buffer, v.buffer, span.buffer, wkv?.buffer ?? scratchBuffer(), o.buffer],
    [d.H, d.KV, [d.scale, "f32"], windowOf(d.window)],
    [d.H, d.B],
  );
}

/** Raw (no autograd): cache (rows, CW)[at[b], off : off + W] = src (B, W), at: (B) u32. */
export function cacheAppendInto(cache: Tensor, src: Tensor, at: Tensor, CW: number, off: number): void {
  const B = at.size,
    W = src.size / B;
  if (!Number.isInteger(W) || off + W > CW || cache.size % CW)
    throw new Error(`cacheAppend: [${src.shape}] rows do not fit [${cache.shape}] rows of ${CW} at ${off}`);
  dispatch(
    pipeline("attention_decode_append"),
    [src.buffer, at.buffer, cache.buffer],
    [B, W, CW, off],
    strideGrid(B * W),
  );
}
