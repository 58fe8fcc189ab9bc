// Mixed precision through the emulated subgroup-matrix kernel (BUNLM_SUBGROUP_MATRIX=emulate: every
// training matmul of M > 8 rows in kernels/matmul_sgmat.wgsl, f16 operands, f32 accumulation) trains
// the same loss curve as f32: issue #16's "done when". On a GPU with subgroup matrices the native
// expansion of the same kernel text computes this arithmetic on tensor cores.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { events, seqData, sh, tmp } from "./helpers.ts";

const dir = tmp("sgmat-mixed");
let d: ReturnType<typeof seqData>;

beforeAll(() => {
  d = seqData(dir);
});

/** A training command with extra environment for it alone. */
function shWith(env: Record<string, string>, args: string[]) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return sh(args);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const losses = (out: string) =>
  events(out)
    .filter((e) => e.event === "step")
    .map((e) => e.loss as number);

describe("mixed precision on the emulated subgroup-matrix kernel", () => {
  test("trains the f32 loss curve within 1% over 100 steps of a tiny model (hidden 32, 2 layers)", () => {
    const common = [
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--model",
      d.model,
      "--max-steps",
      "100",
      "--batch-size",
      "4",
      "--max-lr",
      "3e-3",
      "--warmup-steps",
      "5",
      "--seed",
      "2",
    ];
    const f = shWith({ BUNLM_SUBGROUP_MATRIX: "off" }, [...common, "--out", join(dir, "f32"), "--precision", "f32"]);
    // BUNLM_DEBUG=2 traces every kernel built: the emulated one must be among them
    const m = shWith({ BUNLM_SUBGROUP_MATRIX: "emulate", BUNLM_DEBUG: "2" }, [
      ...common,
      "--out",
      join(dir, "mixed"),
      "--precision",
      "mixed",
    ]);
    expect(f.code).toBe(0);
    expect(m.code).toBe(0);
    expect(events(m.out)[0]).toMatchObject({ event: "start", precision: "mixed" });
    expect(m.err).toContain("pipeline kernels/matmul_sgmat.wgsl");
    expect(m.err).toContain('"SUBGROUP_MATRIX":"emulate"');

    const a = losses(f.out),
      b = losses(m.out);
    expect(a.length).toBe(100);
    expect(b.length).toBe(100);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / a[i]!);
    console.error(
      `emulated mixed vs f32 over 100 steps: final loss ${b[99]!.toFixed(4)} vs ${a[99]!.toFixed(4)}, largest relative gap ${worst.toExponential(2)}`,
    );
    expect(worst).toBeLessThan(0.01);
    expect(a.some((x, i) => x !== b[i])).toBe(true); // f16 operands were used
    expect(b[99]!).toBeLessThan(b[0]! - 1); // and it learned
  }, 120_000);

  test("an overflowing loss scale still shows as inf through the emulated kernel: the step is skipped, the scale halved", () => {
    const r = shWith({ BUNLM_SUBGROUP_MATRIX: "emulate" }, [
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "skip"),
      "--model",
      d.model,
      "--max-steps",
      "12",
      "--batch-size",
      "4",
      "--precision",
      "mixed",
      "--loss-scale",
      "1e9",
    ]);
    expect(r.code).toBe(0);
    const skips = events(r.out).filter((e) => e.event === "skip");
    expect(skips.length).toBeGreaterThan(0);
    skips.forEach((s, i) => expect(s.loss_scale).toBe(1e9 / 2 ** (i + 1)));
    const st = events(r.out).filter((e) => e.event === "step" && !e.skipped);
    expect(st.length).toBeGreaterThan(0);
    expect(Number.isFinite(st[st.length - 1].loss)).toBe(true);
  }, 120_000);
});
