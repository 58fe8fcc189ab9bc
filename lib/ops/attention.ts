// Causal grouped-query attention (Ainslie et al. 2023), fused flash-style forward and backward:
// no T×Tk matrix in global memory, probabilities recomputed in the backward from the log-sum-exp.
// Query head h reads kv head h / (H / KV). A key j is visible to query i when
//   lo_i <= j <= qOffset + i,   lo_i = qOffset + i - pos_i
// so positions that restart at a document start also stop attention across documents.
// Kernels: attention_forward.wgsl, attention_backward_dq.wgsl, attention_backward_dkv.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";

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
}

// ---- CPU references (f64 inside) ----
function range(pos: ArrayLike<number>, b: number, i: number, d: AttnDims): [number, number] {
  const hi = d.qOffset + i;
  return [Math.max(hi - pos[b * d.T + i]!, 0), Math.min(hi, d.Tk - 1)];
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

// ---- GPU ----
/** Tile sizes per head dim: two (tile × D) f32 tiles stay within 16 KiB of workgroup memory. */
function tiles(D: number): { BQ: number; BK: number } {
  const t = Math.max(8, Math.min(32, Math.floor(2048 / D)));
  return { BQ: t, BK: t };
}

function scalars(d: AttnDims) {
  return [d.B, d.T, d.Tk, d.H, d.KV, d.qOffset, [d.scale, "f32"]] as any[];
}

/** Forward only, into given outputs (used by generation with a KV cache). */
export function attentionInto(o: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, d: AttnDims): void {
  const DV = d.DV ?? d.D;
  const { BQ, BK } = tiles(Math.max(d.D, DV));
  dispatch(
    pipeline("attention_forward", { D: d.D, DV, VS: d.VS ?? DV, BQ, BK }),
    [q.buffer, k.buffer, v.buffer, pos.buffer, o.buffer, lse.buffer],
    scalars(d),
    [Math.ceil(d.T / BQ), d.H, d.B],
  );
}

/**
 * q: (B, T, H, D), k: (B, Tk, KV, D), v: (B, Tk, KV, DV), pos: (B·T) i32 → (B, T, H, DV).
 * scale defaults to 1/sqrt(D).
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  pos: Tensor,
  opts: { qOffset?: number; scale?: number } = {},
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
  const d: AttnDims = { B, T, Tk, H, KV, D, DV, qOffset: opts.qOffset ?? 0, scale: opts.scale ?? 1 / Math.sqrt(D) };
  const o = Tensor.empty([B, T, H, DV]);
  const lse = Tensor.empty([B, H, T]);
  attentionInto(o, lse, q, k, v, pos, d);
  return record(o, "attention", [q, k, v], (dout) => {
    const { BQ, BK } = tiles(Math.max(D, DV));
    const dq = Tensor.empty(q.shape),
      dk = Tensor.empty(k.shape),
      dv = Tensor.empty(v.shape);
    const delta = Tensor.empty([B, H, T]);
    dispatch(
      pipeline("attention_backward_dq", { D, DV, VS: DV, BQ, BK }),
      [q.buffer, k.buffer, v.buffer, pos.buffer, o.buffer, dout.buffer, lse.buffer, dq.buffer, delta.buffer],
      scalars(d),
      [Math.ceil(T / BQ), H, B],
    );
    dispatch(
      pipeline("attention_backward_dkv", { D, DV, BKEY: BK, BQ }),
      [q.buffer, k.buffer, v.buffer, pos.buffer, dout.buffer, lse.buffer, delta.buffer, dk.buffer, dv.buffer],
      scalars(d),
      [Math.ceil(Tk / BK), KV, B],
    );
    return [dq, dk, dv];
  });
}
