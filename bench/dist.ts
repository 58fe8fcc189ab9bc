// bun bench/dist.ts [--sizes 1,4,16,64,256] [--ranks 1,2] [--no-train]
//
// What data parallelism costs here (docs/scaling.md holds the model these figures feed):
//   allreduce   lib/dist's allreduceSum of f32 at 1 and 2 ranks (mpiexec on this machine), sizes in MB:
//               mean time, algorithm bandwidth (bytes / time) and bus bandwidth (× 2(N−1)/N, the bytes a
//               ring moves per rank, comparable across N); latency of a 4-byte sum. The sum is checked first.
//   bytes       gradient bytes per step (f32: 4 · params) and what a ring all-reduce moves per rank
//               (2(N−1)/N of it) for the ~100M model (bench/train.ts --gpu-config) and a ~1B one.
//   train       `pretrain --dist` on a small model: step time at 1 rank × batch 8 and 2 ranks × batch 4
//               (the same global batch), and the all-reduce share of a step (the step events'
//               allreduce_s over the time between step events).
// Prints one JSON object. On a shared 2-core machine the figures move by tens of percent between runs.
import { defineCommand, runMain } from "citty";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

/** Llama-style parameter count with tied embeddings (norm weights included). */
function params(c: { layers: number; hidden: number; heads: number; kv: number; inter: number; vocab: number }) {
  const head = c.hidden / c.heads;
  const attn = 2 * c.hidden * c.hidden + 2 * c.hidden * c.kv * head;
  const mlp = 3 * c.hidden * c.inter;
  return c.vocab * c.hidden + c.layers * (attn + mlp + 2 * c.hidden) + c.hidden;
}

/** bench/train.ts's --gpu-config, and TinyLlama-1.1B's shape with the same vocabulary. */
const CONFIGS = {
  "~100M": { layers: 12, hidden: 768, heads: 12, kv: 4, inter: 2048, vocab: 32000 },
  "~1B": { layers: 22, hidden: 2048, heads: 32, kv: 4, inter: 5632, vocab: 32000 },
};

async function worker(sizesMb: number[]) {
  const { initComm } = await import("../lib/dist/index.ts");
  const comm = initComm("mpi")!;
  const N = comm.size;
  const out: Record<string, unknown>[] = [];
  // latency: a 4-byte sum, many times
  const one = new Float32Array(1);
  comm.barrier();
  let t0 = performance.now();
  for (let i = 0; i < 200; i++) comm.allreduceSum(one);
  const latencyUs = ((performance.now() - t0) / 200) * 1000;
  for (const mb of sizesMb) {
    const x = new Float32Array((mb * 2 ** 20) / 4).fill(comm.rank + 1);
    comm.allreduceSum(x); // warm-up, and the check: every element is 1 + 2 + … + N
    const want = (N * (N + 1)) / 2;
    for (let i = 0; i < x.length; i += 4093) if (x[i] !== want) throw new Error(`allreduce wrong at ${i}: ${x[i]}`);
    const reps = Math.max(3, Math.min(20, Math.round(256 / mb)));
    comm.barrier();
    t0 = performance.now();
    for (let i = 0; i < reps; i++) comm.allreduceSum(x);
    const s = (performance.now() - t0) / 1000 / reps;
    const bytes = x.byteLength;
    out.push({
      mb,
      ms: +(s * 1000).toFixed(3),
      algbw_gb_s: +(bytes / s / 1e9).toFixed(3),
      busbw_gb_s: +(((bytes / s) * 2 * (N - 1)) / N / 1e9).toFixed(3),
    });
  }
  if (comm.rank === 0) console.log(JSON.stringify({ ranks: N, latency_us: +latencyUs.toFixed(1), sizes: out }));
  comm.finalize();
}

function spawn(cmd: string[], onLine?: (line: string, t: number) => void) {
  const env = { ...process.env, BUNLM_DIST_TIMEOUT: "120" };
  const p = Bun.spawn(cmd, { cwd: root, env, stdout: "pipe", stderr: "pipe", timeout: 600_000 });
  return (async () => {
    let text = "",
      rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of p.stdout) {
      const s = rest + decoder.decode(chunk, { stream: true });
      const lines = s.split("\n");
      rest = lines.pop()!;
      const t = performance.now();
      for (const l of lines) {
        text += `${l}\n`;
        onLine?.(l, t);
      }
    }
    const code = await p.exited;
    const err = await new Response(p.stderr).text();
    if (code !== 0) throw new Error(`${cmd.slice(0, 6).join(" ")} … exited ${code}: ${err.trim().split("\n").pop()}`);
    return text;
  })();
}

/** Step time and its all-reduce share of `pretrain --dist` at `np` ranks × `batch`. */
async function trainFigures(dir: string, np: number, batch: number, steps: number) {
  const times: number[] = [],
    reduce: number[] = [];
  await spawn(
    [
      "mpiexec",
      "-np",
      String(np),
      process.execPath,
      "cmd/pretrain.ts",
      "--data",
      join(dir, "seq"),
      "--out",
      join(dir, `run${np}`),
      "--model",
      join(dir, "model.json"),
      "--max-steps",
      String(steps),
      "--batch-size",
      String(batch),
      "--ckpt-interval",
      "1000000",
    ],
    (line, t) => {
      if (!line.startsWith("{")) return;
      const e = JSON.parse(line);
      if (e.event !== "step") return;
      times.push(t);
      reduce.push(e.allreduce_s ?? 0);
    },
  );
  // the first steps compile pipelines: time the rest
  const skip = 3;
  const dt = times.slice(skip).map((t, i) => (t - times[skip - 1 + i]!) / 1000);
  const step = dt.reduce((a, b) => a + b, 0) / dt.length;
  const ar = reduce.slice(skip).reduce((a, b) => a + b, 0) / dt.length;
  return {
    ranks: np,
    batch_per_rank: batch,
    step_s: +step.toFixed(4),
    allreduce_s: +ar.toFixed(4),
    allreduce_share: +(ar / step).toFixed(3),
  };
}

async function train(steps: number) {
  const help = Bun.spawnSync([process.execPath, "cmd/pretrain.ts", "--help"], { cwd: root }).stdout.toString();
  if (!help.includes("--dist")) return { figures: null, reason: "pretrain has no --dist flag in this checkout" };
  const dir = mkdtempSync(join(tmpdir(), "bunlm-bench-dist-"));
  try {
    const text = join(root, "examples", "data", "bilingual.txt");
    for (const args of [
      [
        "cmd/tokenize.ts",
        "train",
        "--vocab-size",
        "400",
        "--min-frequency",
        "1",
        "--out",
        join(dir, "tok"),
        "--lines",
        text,
      ],
      [
        "cmd/pack.ts",
        "seq",
        "--tokenizer",
        join(dir, "tok"),
        "--seq-len",
        "64",
        "--out",
        join(dir, "seq"),
        "--lines",
        text,
      ],
    ])
      await spawn([process.execPath, ...args]);
    const model = { hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 };
    writeFileSync(
      join(dir, "model.json"),
      JSON.stringify({ ...model, intermediate_size: 256, tie_word_embeddings: true }),
    );
    const p = params({ layers: 4, hidden: 128, heads: 4, kv: 2, inter: 256, vocab: 400 });
    return {
      model: { ...model, intermediate_size: 256, vocab: 400, seq_len: 64, params: p, gradient_bytes: 4 * p },
      global_batch: 8,
      figures: [await trainFigures(dir, 1, 8, steps), await trainFigures(dir, 2, 4, steps)],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const command = defineCommand({
  meta: { name: "bench/dist.ts", description: "all-reduce bandwidth and data-parallel step time over MPI" },
  args: {
    sizes: { type: "string", default: "1,4,16,64,256", description: "all-reduce sizes in MB" },
    ranks: { type: "string", default: "1,2", description: "world sizes to launch with mpiexec" },
    steps: { type: "string", default: "12", description: "pretrain steps per run (the first 3 are not timed)" },
    train: { type: "boolean", default: true, description: "time pretrain --dist (--no-train skips it)" },
    worker: { type: "boolean", default: false, description: "(internal) one rank of the all-reduce job" },
  },
  async run({ args }) {
    const sizes = args.sizes.split(",").map(Number);
    if (args.worker) return worker(sizes);
    const allreduce = [];
    for (const np of args.ranks.split(",").map(Number)) {
      const out = await spawn([
        "mpiexec",
        "-np",
        String(np),
        process.execPath,
        join("bench", "dist.ts"),
        "--worker",
        "--sizes",
        args.sizes,
      ]);
      allreduce.push(JSON.parse(out.trim().split("\n").pop()!));
    }
    const bytes = Object.fromEntries(
      Object.entries(CONFIGS).map(([name, c]) => {
        const p = params(c);
        const g = 4 * p;
        return [
          name,
          {
            ...c,
            params: p,
            gradient_bytes_f32: g,
            ring_bytes_per_rank: Object.fromEntries(
              [2, 8, 16].map((n) => [`n${n}`, Math.round((2 * (n - 1) * g) / n)]),
            ),
          },
        ];
      }),
    );
    const trained = args.train ? await train(Number(args.steps)) : { figures: null, reason: "--no-train" };
    console.log(JSON.stringify({ bench: "dist", allreduce, bytes_per_step: bytes, train: trained }));
  },
});

if (import.meta.main) await runMain(command);
