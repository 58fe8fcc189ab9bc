// Data parallelism over MPI through the command line (`mpiexec -np 2 bun cmd/pretrain.ts …`), on
// lavapipe where each rank is its own CPU process: 2 ranks × batch 4 follow the trajectory of 1 rank
// × batch 8 and of 1 rank × batch 4 × accumulation 2; a 2-rank checkpoint resumes on 1 rank; dpo and
// grpo deal pairs and prompts (groups stay whole); a killed rank ends the job, Ctrl-C saves once,
// replicas that drift apart are caught; stdout carries rank 0's JSONL alone.
// MPICH is part of the set-up (setup.sh installs it): a missing mpiexec fails here, it is not skipped.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { disposeParams, namedParams } from "../../lib/model/params.ts";
import { readMeta } from "../../lib/train/checkpoint.ts";
import { bun, events, root, seqData, sh, tmp } from "./helpers.ts";

const dir = tmp("dist");
let d: ReturnType<typeof seqData>;
const mpiexec = Bun.which("mpiexec");

beforeAll(async () => {
  if (!mpiexec)
    throw new Error("mpiexec not found: `bash setup.sh` installs MPICH (apt-get install mpich libmpich-dev)");
  await initGpu();
  d = seqData(dir);
});

// a dead peer must end a run in seconds, not after the default 300 s collective timeout
const ENV = { ...process.env, BUNLM_DIST_TIMEOUT: "60" };

/** `mpiexec -np n bun args…`, to completion. */
function mpi(n: number, args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync([mpiexec!, "-np", String(n), bun, ...args], { cwd: root, env: { ...ENV, ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

const steps = (out: string) => events(out).filter((e) => e.event === "step");

/** |a − b| ≤ rel·|b| for every step's loss (the same rows and normalizer; f32 sums in another order). */
function sameLosses(a: any[], b: any[], rel: number, label: string): number {
  expect(a.map((e) => e.step)).toEqual(b.map((e) => e.step));
  let most = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i].loss - b[i].loss) / Math.abs(b[i].loss);
    most = Math.max(most, err);
    if (!(err <= rel)) throw new Error(`${label}: step ${b[i].step} loss ${a[i].loss} vs ${b[i].loss} (rel ${err})`);
  }
  return most;
}

/**
 * Every weight tensor of two checkpoints within rel: ‖a − b‖ ≤ rel·‖b‖. Relative to the tensor's norm,
 * not element by element: AdamW divides by √v, so a weight whose gradients hover around zero moves by
 * up to lr on a sign that f32 rounding decides, whatever the order of the sums. Returns the largest
 * relative difference.
 */
async function sameWeights(x: string, y: string, rel: number): Promise<number> {
  const a = loadModel(x),
    b = loadModel(y);
  const pb = namedParams(b.params);
  let most = 0;
  for (const [name, t] of namedParams(a.params)) {
    const u = await t.toArray(),
      v = await pb.get(name)!.toArray();
    let diff = 0,
      norm = 0;
    for (let i = 0; i < u.length; i++) {
      diff += (u[i]! - v[i]!) ** 2;
      norm += v[i]! ** 2;
    }
    const r = Math.sqrt(diff / norm);
    most = Math.max(most, r);
    if (!(r <= rel)) throw new Error(`${x} vs ${y}: ${name} differs by ${r} relative`);
  }
  disposeParams(a.params);
  disposeParams(b.params);
  return most;
}

/** The process of `rank` under an mpiexec: its descendant whose environment says PMI_RANK=rank. */
function rankPid(launcher: number, rank: number): number | null {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // the fields after the command's closing parenthesis: state, ppid, …
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const under = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === launcher) return true;
    return false;
  };
  for (const pid of parent.keys()) {
    if (!under(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`PMI_RANK=${rank}`)) return pid;
    } catch {}
  }
  return null;
}

const train = (out: string, extra: string[], maxSteps = 20) => [
  "cmd/pretrain.ts",
  "--data",
  d.data,
  "--out",
  join(dir, out),
  "--model",
  d.model,
  "--max-steps",
  String(maxSteps),
  "--max-lr",
  "3e-3",
  "--warmup-steps",
  "3",
  "--seed",
  "5",
  ...extra,
];

describe("pretrain on 2 ranks", () => {
  let two: ReturnType<typeof mpi>;

  test("2 ranks × batch 4 = 1 rank × batch 8 = 1 rank × batch 4 × accumulation 2, loss by loss and in the final weights", async () => {
    two = mpi(2, train("two", ["--batch-size", "4", "--ckpt-interval", "10"]));
    if (two.code !== 0) throw new Error(two.err);
    const one = sh(train("one", ["--batch-size", "8"]));
    const acc = sh(train("acc", ["--batch-size", "4", "--accumulation-steps", "2"]));
    expect(one.code).toBe(0);
    expect(acc.code).toBe(0);
    // the rows are the same and so is the normalizer; only the order of f32 sums differs (measured:
    // losses 8e-8, weights 1.2e-6 relative between 2×4 and 1×8)
    const l1 = sameLosses(steps(two.out), steps(one.out), 1e-5, "2×4 vs 1×8");
    const l2 = sameLosses(steps(two.out), steps(acc.out), 1e-5, "2×4 vs 1×4×2");
    const w1 = await sameWeights(join(dir, "two", "step_000020"), join(dir, "one", "step_000020"), 1e-5);
    const w2 = await sameWeights(join(dir, "two", "step_000020"), join(dir, "acc", "step_000020"), 1e-5);
    // the same measure between the two single-process runs: the f32 noise of summing in another order
    const w0 = await sameWeights(join(dir, "acc", "step_000020"), join(dir, "one", "step_000020"), 1e-5);
    console.error(
      `2×4 vs 1×8: loss ${l1}, weights ${w1}; vs 1×4×2: loss ${l2}, weights ${w2}; 1×4×2 vs 1×8: weights ${w0}`,
    );
    // accumulation adds micro-batch 2's gradient to micro-batch 1's, and the 2-rank sum adds rank 1's to
    // rank 0's: the same f32 additions, so these two runs agree bit for bit
    expect([l2, w2]).toEqual([0, 0]);
    // 1×8 sums the 8 rows inside each matmul instead: its distance from 2×4 is the one 1×4×2 has too
    expect(w1).toBe(w0);
    // the checkpoint records the global batch; consumed samples count every rank's rows
    const meta = readMeta(join(dir, "two", "step_000020"));
    expect(meta).toMatchObject({ global_batch_size: 8, world_size: 2, consumed_samples: 160 });
  });

  test("a mixture-of-experts model: 2 ranks × 4 = 1 rank × 4 × accumulation 2, aux loss and expert load too", () => {
    // experts route per token, so the rows dealt to a rank change nothing; the metrics are shares of
    // the global batch (expert_load_max: a mean over micro-batches and ranks)
    const moe = join(dir, "moe.json");
    writeFileSync(
      moe,
      JSON.stringify({
        ...JSON.parse(readFileSync(d.model, "utf8")),
        num_experts: 4,
        num_experts_per_tok: 2,
        moe_intermediate_size: 16,
        router_aux_loss_coef: 0.01,
      }),
    );
    const run = (out: string, extra: string[]) =>
      train(out, ["--batch-size", "4", ...extra], 3).map((a) => (a === d.model ? moe : a));
    const two2 = mpi(2, run("moe-two", []));
    if (two2.code !== 0) throw new Error(two2.err);
    const acc = sh(run("moe-acc", ["--accumulation-steps", "2"]));
    expect(acc.code, acc.err).toBe(0);
    const pick = (out: string) => steps(out).map((e) => [e.loss, e.aux_loss, e.expert_load_max]);
    expect(pick(two2.out)).toEqual(pick(acc.out));
    for (const [, , load] of pick(acc.out)) expect(load).toBeLessThanOrEqual(1);
  });

  test("stdout carries one JSONL stream: rank 0's, the same as metrics.jsonl", () => {
    const lines = two.out.trim().split("\n");
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    const ev = lines.map((l) => JSON.parse(l));
    expect(ev.filter((e) => e.event === "start")).toHaveLength(1);
    expect(ev[0]).toMatchObject({ event: "start", world_size: 2, global_batch_size: 8 });
    expect(ev.filter((e) => e.event === "summary")).toHaveLength(1);
    expect(steps(two.out).map((e) => e.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(ev.filter((e) => e.event === "checkpoint").map((e) => e.step)).toEqual([10, 20]);
    const file = readFileSync(join(dir, "two", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n");
    expect(file).toEqual(lines);
    // rank 1 says nothing when all is well
    expect(two.err).toBe("");
  });

  test("a 2-rank checkpoint resumes on 1 rank with the same global batch and continues the trajectory", async () => {
    const r = sh(["cmd/pretrain.ts", "--resume", join(dir, "two", "step_000010"), "--out", join(dir, "resumed")]);
    if (r.code !== 0) throw new Error(r.err);
    sameLosses(steps(r.out), steps(two.out).slice(10), 1e-5, "resumed on 1 rank vs 2 ranks");
    await sameWeights(join(dir, "resumed", "step_000020"), join(dir, "two", "step_000020"), 1e-5);
    const meta = readMeta(join(dir, "resumed", "step_000020"));
    expect(meta).toMatchObject({ global_batch_size: 8, world_size: 1, config: { batch_size: 8 } });
    // 8 rows do not split among 3 ranks
    const three = mpi(3, ["cmd/pretrain.ts", "--resume", join(dir, "two", "step_000010"), "--out", join(dir, "three")]);
    expect(three.code).not.toBe(0);
    expect(three.err).toContain(
      "its global batch of 8 rows (4 per rank × 2 ranks) does not divide among 3 ranks; run on a divisor of 8 ranks, or give --batch-size",
    );
    // said once, by rank 0
    expect(three.err.split("global batch of 8").length).toBe(2);
  });
});

describe("faults", () => {
  test("killing one rank ends the job non-zero within 60 s; the last checkpoint loads", async () => {
    const out = join(dir, "kill");
    const p = Bun.spawn(
      [
        mpiexec!,
        "-np",
        "2",
        bun,
        ...train("kill", ["--batch-size", "4", "--ckpt-interval", "5", "--log-interval", "5"], 100000),
      ],
      { cwd: root, env: ENV, stdout: "pipe", stderr: "pipe" },
    );
    const reader = p.stdout.getReader();
    let text = "";
    while (!text.includes('"event":"checkpoint"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the run ended before its first checkpoint: ${await new Response(p.stderr).text()}`);
      text += new TextDecoder().decode(value);
    }
    const victim = rankPid(p.pid, 1);
    expect(victim).not.toBeNull();
    const t0 = performance.now();
    process.kill(victim!, "SIGKILL");
    const code = await p.exited;
    const seconds = (performance.now() - t0) / 1000;
    expect(code).not.toBe(0);
    expect(seconds).toBeLessThan(60);
    const last = readdirSync(out)
      .filter((n) => /^step_\d+$/.test(n))
      .sort()
      .at(-1)!;
    const m = loadModel(join(out, last));
    expect(m.config.hidden_size).toBe(32);
    disposeParams(m.params);
    expect(readMeta(join(out, last)).step).toBe(Number(last.slice(5)));
  });

  test("Ctrl-C on mpiexec: every rank stops after the same step, rank 0 saves once", async () => {
    const p = Bun.spawn([mpiexec!, "-np", "2", bun, ...train("sigint", ["--batch-size", "4"], 100000)], {
      cwd: root,
      env: ENV,
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = p.stdout.getReader();
    let text = "";
    while (!text.includes('"step":3,')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(await new Response(p.stderr).text());
      text += new TextDecoder().decode(value);
    }
    p.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    // the ranks exit 130; what mpiexec itself returns after forwarding a Ctrl-C is the launcher's
    // choice (MPICH's hydra gives 130 or 0 depending on which it saw first)
    expect([130, 0]).toContain(await p.exited);
    const ev = events(text);
    const cks = ev.filter((e) => e.event === "checkpoint");
    expect(cks).toHaveLength(1);
    expect(cks[0]).toMatchObject({ reason: "SIGINT", step: steps(text).at(-1).step });
    expect(ev.at(-1)).toMatchObject({ event: "summary", stopped: "SIGINT" });
    expect(readMeta(cks[0].path).reason).toBe("SIGINT");
  });

  test("a rank whose weights drift from the others' stops the job before it saves them", () => {
    // a callback that changes one weight on rank 1 alone, after step 1
    const cb = join(dir, "drift.ts");
    writeFileSync(
      cb,
      `import { writeBuffer } from ${JSON.stringify(join(root, "lib/gpu/index.ts"))};
export default {
  on_step_end(t: any) {
    if (process.env.PMI_RANK === "1" && t.step === 1) writeBuffer(t.params.norm.buffer, new Float32Array([2]));
  },
};
`,
    );
    const r = mpi(2, train("drift", ["--batch-size", "4", "--ckpt-interval", "2", "--callback", cb]));
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("bunlm: error: the ranks' weights differ after step 2 (model.norm.weight)");
    expect(existsSync(join(dir, "drift", "step_000002"))).toBe(false);
  });
});

describe("dpo and grpo on 2 ranks", () => {
  const text = readFileSync(join(root, "examples", "data", "bilingual.txt"), "utf8")
    .split("\n")
    .filter((l) => l.trim().length > 8)
    .slice(0, 32);

  test("dpo deals pairs: 2 ranks × 2 pairs follow 1 rank × 4 pairs", () => {
    const pairs = text.map((l, i) => ({
      prompt: l.slice(0, 6),
      chosen: l.slice(6, 20),
      rejected: text[(i + 7) % text.length]!.slice(6, 20),
    }));
    writeFileSync(join(dir, "pairs.jsonl"), pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
    const data = join(dir, "dpo");
    const pk = sh([
      "cmd/pack.ts",
      "dpo",
      "--tokenizer",
      d.tok,
      "--seq-len",
      "24",
      "--out",
      data,
      join(dir, "pairs.jsonl"),
    ]);
    if (pk.code !== 0) throw new Error(pk.err);
    const args = (out: string, b: string) => [
      "cmd/dpo.ts",
      "--data",
      data,
      "--out",
      join(dir, out),
      "--model",
      d.model,
      "--max-steps",
      "4",
      "--batch-size",
      b,
      "--max-lr",
      "3e-3",
      "--seed",
      "2",
    ];
    const two = mpi(2, args("dpo2", "2"));
    if (two.code !== 0) throw new Error(two.err);
    const one = sh(args("dpo1", "4"));
    expect(one.code).toBe(0);
    sameLosses(steps(two.out), steps(one.out), 1e-5, "dpo 2×2 vs 1×4");
    for (const k of ["rewards/chosen", "rewards/accuracies", "rewards/margins"])
      steps(two.out).forEach((e, i) => expect(e[k]).toBeCloseTo(steps(one.out)[i][k], 5));
  });

  test("grpo deals prompts: each prompt's group is sampled and rewarded whole on one rank, with one process's seeds", () => {
    writeFileSync(
      join(dir, "prompts.jsonl"),
      text.map((l) => JSON.stringify({ prompt: l.slice(0, 8) })).join("\n") + "\n",
    );
    const data = join(dir, "grpo");
    const pk = sh([
      "cmd/pack.ts",
      "grpo",
      "--tokenizer",
      d.tok,
      "--seq-len",
      "8",
      "--out",
      data,
      join(dir, "prompts.jsonl"),
    ]);
    if (pk.code !== 0) throw new Error(pk.err);
    // every reward call logged with the rank that made it
    const reward = join(dir, "reward.ts");
    writeFileSync(
      reward,
      `import { appendFileSync } from "node:fs";
export function reward(prompt: string, response: string) {
  appendFileSync(process.env.REWARD_LOG!, JSON.stringify([process.env.PMI_RANK ?? "-", prompt, response]) + "\\n");
  return [...response].filter((c) => c === "e").length;
}
`,
    );
    const G = 3,
      B = 2,
      S = 3;
    const args = (out: string, b: number) => [
      "cmd/grpo.ts",
      "--data",
      data,
      "--out",
      join(dir, out),
      "--model",
      d.model,
      "--max-steps",
      String(S),
      "--batch-size",
      String(b),
      "--group-size",
      String(G),
      "--max-new-tokens",
      "4",
      "--reward",
      reward,
      "--seed",
      "4",
    ];
    const two = mpi(2, args("grpo2", B), { REWARD_LOG: join(dir, "log2.jsonl") });
    if (two.code !== 0) throw new Error(two.err);
    const oneLog = join(dir, "log1.jsonl");
    const single = Bun.spawnSync([bun, ...args("grpo1", 2 * B)], { cwd: root, env: { ...ENV, REWARD_LOG: oneLog } });
    expect(single.exitCode).toBe(0);
    const read = (f: string) =>
      readFileSync(f, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as [string, string, string]);
    const log2 = read(join(dir, "log2.jsonl")),
      log1 = read(oneLog);
    // groups: G consecutive calls of one rank share a prompt
    const groups = (calls: [string, string, string][]) => {
      const out: { prompt: string; responses: string[] }[] = [];
      for (let i = 0; i < calls.length; i += G) {
        const g = calls.slice(i, i + G);
        expect(new Set(g.map((c) => c[1])).size).toBe(1);
        out.push({ prompt: g[0]![1], responses: g.map((c) => c[2]) });
      }
      return out;
    };
    const all = groups(log1);
    const r0 = groups(log2.filter((c) => c[0] === "0")),
      r1 = groups(log2.filter((c) => c[0] === "1"));
    expect(all).toHaveLength(S * 2 * B);
    // the deal: of each step's 2B prompts, rank 0 takes the first B and rank 1 the rest
    const mine = (r: number) => all.filter((_, i) => Math.floor((i % (2 * B)) / B) === r);
    expect(r0.map((g) => g.prompt)).toEqual(mine(0).map((g) => g.prompt));
    expect(r1.map((g) => g.prompt)).toEqual(mine(1).map((g) => g.prompt));
    // step 1 starts from the same weights: every response is the one the single process sampled
    expect([...r0.slice(0, B), ...r1.slice(0, B)]).toEqual(all.slice(0, 2 * B));
    const s2 = steps(two.out),
      s1 = steps(single.stdout.toString());
    expect(s2).toHaveLength(S);
    sameLosses(s2.slice(0, 1), s1.slice(0, 1), 1e-5, "grpo step 1");
    expect(s2[0].reward).toBeCloseTo(s1[0].reward, 6);
  });
});
