// bun bench/embedding.ts [--tokens 8192 --vocab 8192 --hidden 384 --dists zipf,uniform,same --reps 9]
// The embedding table's gradient (lib/ops/embedding.ts's backward) on a training-sized shape, one JSON
// line per token distribution: zipf (s = 1.1, like text: a few ids take most tokens), uniform, and
// same (every token one id: the longest possible row). Each result is first checked bit for bit
// against the CPU reference embeddingBackwardRef, which sums in the kernel's order, and against a
// second GPU run (determinism); the median and fastest of --reps runs are printed beside the
// reference's time from the same run.
import { defineCommand } from "citty";
import { initGpu, flush } from "../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../lib/tensor/index.ts";
import { embedding, embeddingBackwardRef } from "../lib/ops/embedding.ts";
import { Rng } from "../lib/base/rng.ts";
import { InputError } from "../lib/base/errors.ts";
import { runCli } from "../cmd/_cli.ts";

function tokenIds(dist: string, N: number, V: number, rng: Rng): Int32Array {
  if (dist === "uniform") return Int32Array.from({ length: N }, () => rng.int(V));
  if (dist === "same") return new Int32Array(N).fill(Math.floor(V / 3));
  if (dist !== "zipf") throw new InputError(`--dists: "${dist}" is not zipf, uniform or same`);
  const cdf = new Float64Array(V);
  let s = 0;
  for (let k = 0; k < V; k++) cdf[k] = s += 1 / (k + 1) ** 1.1;
  return Int32Array.from({ length: N }, () => {
    const u = rng.next() * s;
    let lo = 0,
      hi = V - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  });
}

function sameBits(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let bad = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) bad++;
  return bad;
}

const main = defineCommand({
  meta: { name: "bench-embedding", description: "embedding backward time against its CPU reference" },
  args: {
    tokens: { type: "string", default: "8192", description: "N: tokens in the batch (B·T)" },
    vocab: { type: "string", default: "8192", description: "V: rows of the table" },
    hidden: { type: "string", default: "384", description: "C: channels" },
    dists: { type: "string", default: "zipf,uniform,same", description: "token id distributions to measure" },
    reps: {
      type: "string",
      default: "9",
      description: "timed repetitions after two checked runs (median and min printed)",
    },
  },
  async run({ args }) {
    const g = await initGpu();
    const [N, V, C, reps] = [+args.tokens, +args.vocab, +args.hidden, +args.reps];
    for (const [flag, x] of Object.entries({ tokens: N, vocab: V, hidden: C, reps }))
      if (!Number.isInteger(x) || x < 1) throw new InputError(`--${flag}: a positive integer, got "${args[flag]}"`);
    const rng = new Rng(3);
    const table = Float32Array.from({ length: V * C }, () => rng.next() * 2 - 1);
    const dout = Float32Array.from({ length: N * C }, () => rng.next() * 2 - 1);
    for (const dist of args.dists.split(",")) {
      const ids = tokenIds(dist, N, V, rng);
      const r = await scopeAsync(async () => {
        const W = Tensor.from(table, [V, C]).param();
        const y = embedding(W, Tensor.from(ids, [N], "i32"));
        const d = Tensor.from(dout, [N, C]);
        const run = () => scopeAsync(async () => (await y.node!.backward(d)[0]!.toArray()) as Float32Array);
        const first = await run(),
          second = await run();
        const times: number[] = [];
        for (let k = 0; k < reps; k++)
          await scopeAsync(async () => {
            const t0 = performance.now();
            y.node!.backward(d);
            await flush();
            times.push(performance.now() - t0);
          });
        times.sort((a, b) => a - b);
        return { first, second, ms: times[reps >> 1]!, msMin: times[0]! };
      });
      const t0 = performance.now();
      const want = embeddingBackwardRef(dout, ids, V, C);
      const refMs = performance.now() - t0;
      const offRef = sameBits(r.first, want),
        offRerun = sameBits(r.first, r.second);
      if (offRef || offRerun)
        throw new Error(`${dist}: ${offRef} values differ from the reference, ${offRerun} between two runs`);
      console.log(
        JSON.stringify({
          figure: "embedding_backward",
          dist,
          tokens: N,
          vocab: V,
          hidden: C,
          rows_used: new Set(ids).size,
          provider: g.provider,
          adapter: g.info.description || g.info.device,
          ms: +r.ms.toFixed(3),
          ms_min: +r.msMin.toFixed(3),
          ref_cpu_ms: +refMs.toFixed(3),
          bit_exact: true,
        }),
      );
    }
  },
});

if (import.meta.main) await runCli(main);
