// Mixed precision (f16 matmul inputs, f32 accumulation, dynamic loss scaling) against f32 on the same
// data and seed. lavapipe has no subgroup matrices, so this is the exact emulation of the tensor-core
// arithmetic (quantizeToF16 on every matmul operand); the GPU kernel is checked against it there.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { events, seqData, sh, tmp } from "./helpers.ts";

const dir = tmp("mixed");
let d: ReturnType<typeof seqData>;

beforeAll(() => {
  d = seqData(dir);
});

const steps = (out: string) => events(out).filter((e) => e.event === "step");

describe("mixed precision", () => {
  test("loss curves of mixed and f32 agree within noise over 60 steps; the first line says which", () => {
    const common = [
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--model",
      d.model,
      "--max-steps",
      "60",
      "--batch-size",
      "4",
      "--max-lr",
      "3e-3",
      "--warmup-steps",
      "5",
      "--seed",
      "2",
    ];
    const f = sh([...common, "--out", join(dir, "f32"), "--precision", "f32"]);
    const m = sh([...common, "--out", join(dir, "mixed"), "--precision", "mixed"]);
    expect(f.code).toBe(0);
    expect(m.code).toBe(0);
    expect(events(f.out)[0]).toMatchObject({ event: "start", precision: "f32" });
    expect(events(m.out)[0]).toMatchObject({ event: "start", precision: "mixed", loss_scale: 65536 });
    const a = steps(f.out),
      b = steps(m.out);
    expect(b.every((e) => e.loss_scale === 65536)).toBe(true);
    // f16 rounding perturbs every step a little; the curves must track each other, not match
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i].loss - b[i].loss) / a[i].loss);
    console.error(
      `mixed vs f32 over 60 steps: final loss ${b[59].loss.toFixed(4)} vs ${a[59].loss.toFixed(4)}, largest relative gap ${worst.toFixed(4)}`,
    );
    expect(worst).toBeLessThan(0.03);
    expect(a.some((e, i) => e.loss !== b[i].loss)).toBe(true); // and f16 inputs really were used
    expect(b[59].loss).toBeLessThan(b[0].loss - 1);
  });

  test("an overflowing loss scale skips the update, halves the scale, and training goes on", () => {
    const r = sh([
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
    const ev = events(r.out);
    const skips = ev.filter((e) => e.event === "skip");
    expect(skips.length).toBeGreaterThan(0);
    skips.forEach((s, i) => expect(s.loss_scale).toBe(1e9 / 2 ** (i + 1)));
    const st = steps(r.out).filter((e) => !e.skipped);
    expect(st.length).toBeGreaterThan(0);
    expect(st[st.length - 1].loss_scale).toBe(skips[skips.length - 1].loss_scale);
    expect(Number.isFinite(st[st.length - 1].loss)).toBe(true);
  });
});
