// Scoring for `eval`: the summed log-probability of chosen target tokens under a model, for many
// requests of different lengths at once, without gradients. What DPO and GRPO score with
// (policy.ts's tokenLogprobs) builds the logits of the whole batch at once; here the final hidden
// states are built once and the head runs over a few rows at a time, so a 151,936-token vocabulary
// at a 2,048-token window needs 32 MiB of logits, not 1.2 GB (past a 128 MiB storage binding too).
// Requests are sorted longest first and right-padded to the longest of their batch: attention is
// causal, so the padding after a request's last token changes none of its logits, and padded
// positions carry no target.
import { Tensor } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { scope, scopeAsync } from "../tensor/scope.ts";
import { copyBuffer } from "../gpu/index.ts";
import { logprobs, IGNORE_INDEX } from "../ops/cross_entropy.ts";
import { hidden, logitsOf } from "../model/transformer.ts";
import type { ModelConfig } from "../model/config.ts";
import type { ModelParams } from "../model/params.ts";

/** Bytes of logits one head pass may produce: rows per pass = this / (4·V). */
const LOGIT_BYTES = 32 << 20;

/** One sequence to score: input ids, and per position the token it must predict (IGNORE_INDEX: none). */
export interface ScoreRequest {
  ids: ArrayLike<number>;
  targets: ArrayLike<number>;
  /** positions (pack's position_ids, restarting at document starts); unset: 0..n-1 */
  pos?: ArrayLike<number>;
}

export interface Scored {
  /** Σ log p(target) over the request's scored positions (accumulated in f64) */
  logprob: number;
  /** scored positions */
  tokens: number;
}

/** log p(target) per position of a padded (B, T) batch → (B·T), 0 where IGNORE_INDEX. */
export async function batchLogprobs(
  c: ModelConfig,
  p: ModelParams,
  ids: Int32Array,
  pos: Int32Array,
  targets: Int32Array,
  B: number,
  T: number,
  logitBytes = LOGIT_BYTES,
): Promise<Float32Array> {
  const N = B * T,
    C = c.hidden_size;
  const V = c.vocab_size;
  const rows = Math.max(1, Math.floor(logitBytes / (4 * V)));
  return scopeAsync(async () => {
    const out = noGrad(() => {
      const h = hidden(c, p, Tensor.from(ids, [N], "i32"), Tensor.from(pos, [N], "i32"), B, T); // (N, C)
      const lp = Tensor.empty([N]); // (N); rows of passes that score nothing stay unwritten
      for (let r0 = 0; r0 < N; r0 += rows) {
        const n = Math.min(rows, N - r0);
        const tg = targets.subarray(r0, r0 + n);
        if (tg.every((t) => t === IGNORE_INDEX)) continue;
        scope(() => {
          const x = Tensor.empty([n, C]); // (n, C): rows r0.. of the hidden states
          copyBuffer(h.buffer, r0 * C * 4, x.buffer, 0, n * C * 4);
          const part = logprobs(logitsOf(p, x), Tensor.from(tg, [n], "i32"), { inplace: true }); // (n)
          copyBuffer(part.buffer, 0, lp.buffer, r0 * 4, n * 4);
        });
      }
      return lp;
    });
    // one read for the whole batch; positions without a target (or never written) are 0
    const host = (await out.toArray()) as Float32Array;
    for (let i = 0; i < N; i++) if (targets[i] === IGNORE_INDEX) host[i] = 0;
    return host;
  });
}

/**
 * Σ log p(target) of each request, `batchSize` requests per forward (longest first, padded to the
 * longest of the batch). Results come back in the requests' order.
 */
export async function scoreRequests(
  c: ModelConfig,
  p: ModelParams,
  reqs: ScoreRequest[],
  batchSize: number,
  /** bytes of logits per head pass (tests make it small to cut a batch into several passes) */
  logitBytes = LOGIT_BYTES,
): Promise<Scored[]> {
  const out: Scored[] = new Array(reqs.length);
  const order = reqs.map((_, i) => i).sort((a, b) => reqs[b]!.ids.length - reqs[a]!.ids.length);
  for (let at = 0; at < order.length; at += batchSize) {
    const idx = order.slice(at, at + batchSize);
    const B = idx.length,
      T = reqs[idx[0]!]!.ids.length;
    const ids = new Int32Array(B * T),
      pos = new Int32Array(B * T),
      targets = new Int32Array(B * T).fill(IGNORE_INDEX);
    idx.forEach((r, b) => {
      const q = reqs[r]!;
      const n = q.ids.length;
      if (q.targets.length !== n || (q.pos && q.pos.length !== n))
        throw new Error(`scoreRequests: request ${r} has ${n} ids but ${q.targets.length} targets`);
      ids.set(q.ids, b * T);
      targets.set(q.targets, b * T);
      for (let t = 0; t < T; t++) pos[b * T + t] = q.pos && t < n ? q.pos[t]! : t;
    });
    const lp = await batchLogprobs(c, p, ids, pos, targets, B, T, logitBytes);
    idx.forEach((r, b) => {
      let s = 0,
        k = 0;
      for (let t = 0; t < T; t++)
        if (targets[b * T + t] !== IGNORE_INDEX) {
          s += lp[b * T + t]!;
          k++;
        }
      out[r] = { logprob: s, tokens: k };
    });
  }
  return out;
}
