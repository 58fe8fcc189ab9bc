// bench/gpu.sh --dry-run on this machine's adapter (lavapipe): every step that needs no CUDA runs at tiny
// sizes and yields its number; the CUDA-only parts (TF32, bf16, nvidia-smi) come back as nulls with
// their reason; the summary repeats every value. And with no budget left, every figure is still there,
// skipped with the reason, and the script still exits 0: one failing step never costs the others.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { FIGURES, TARGETS, TRAIN_CONFIGS } from "../../bench/gpu.ts";

const root = join(import.meta.dir, "..", "..");
type Line = Record<string, any>;

async function gpuSh(...args: string[]): Promise<{ rc: number; lines: Line[]; stderr: string }> {
  // the kernel choices the script should make itself, whatever an earlier test file left set
  const env = { ...process.env };
  delete env.BUNLM_SUBGROUP_MATRIX;
  delete env.BUNLM_MATMUL;
  const p = Bun.spawn(["bash", join(root, "bench", "gpu.sh"), ...args], {
    cwd: root,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const rc = await p.exited;
  return {
    rc,
    lines: out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l)),
    stderr,
  };
}

/** Each figure line: a positive number, or null with exactly one non-empty reason. */
function checkShape(f: Line) {
  expect(typeof f.unit).toBe("string");
  if (f.value !== null) {
    expect(typeof f.value).toBe("number");
    expect(f.value).toBeGreaterThan(0);
    expect(f.skipped).toBeUndefined();
    expect(f.error).toBeUndefined();
  } else {
    const reasons = [f.skipped, f.error].filter((r) => r !== undefined);
    expect(reasons).toHaveLength(1);
    expect(typeof reasons[0]).toBe("string");
    expect(reasons[0].length).toBeGreaterThan(0);
  }
}

let dry: Promise<{ rc: number; lines: Line[]; stderr: string }> | null = null;
const dryRun = () => (dry ??= gpuSh("--dry-run"));
const byName = (lines: Line[]) => new Map(lines.map((l) => [l.figure as string, l]));

test("the dry run prints gpu_info, every figure once in order, then the summary, and exits 0", async () => {
  const { rc, lines, stderr } = await dryRun();
  expect(rc, stderr).toBe(0);
  expect(lines.map((l) => l.figure)).toEqual(["gpu_info", ...FIGURES, "summary"]);
  for (const f of lines.slice(1, -1)) checkShape(f);
  const info = lines[0]!;
  expect(info.dry_run).toBe(true);
  expect(info.error).toBeUndefined();
  expect(info.provider).toBe("dawn");
  expect(info.features).toContain("shader-f16");
  expect(["native", "emulate", "off"]).toContain(info.subgroup_matrix);
  expect(Array.isArray(info.subgroup_matrix_config_list)).toBe(true);
  // lavapipe has no subgroup matrices: the path is off, and the probe says why native is
  if (info.subgroup_matrix_config_list.length === 0) {
    expect(info.subgroup_matrix).toBe("off");
    expect(info.native_unavailable).toBe("has no subgroup matrices");
  }
}, 400_000);

test("every step that needs no CUDA measures a number at its dry-run size", async () => {
  const f = byName((await dryRun()).lines);
  const mm = f.get("matmul_f32")!,
    sg = f.get("matmul_sgmat")!;
  expect([mm.error, sg.error]).toEqual([undefined, undefined]);
  expect([mm.size, sg.size]).toEqual(["256x256x256", "256x256x256"]);
  expect(mm.precision).toBe("f32");
  // the subgroup-matrix kernel itself, through the emulation, not the tiled f16 fallback
  expect(sg.subgroup_matrix).toBe("emulate");
  expect(sg.kernel.kernel).toBe("matmul_sgmat");
  for (const [name, precision] of [
    ["train_f32", "f32"],
    ["train_mixed", "mixed"],
  ]) {
    const t = f.get(name)!;
    expect(t.error).toBeUndefined();
    expect([t.config, t.precision, t.steps, t.unit]).toEqual(["small", precision, 1, "tokens/s"]);
    // the fallback copy of bench/train.ts's small config is the one it really runs
    const { layers, hidden, heads, kv, inter, vocab, seq, batch } = t;
    expect({ layers, hidden, heads, kv, inter, vocab, seq, batch }).toEqual(TRAIN_CONFIGS.small);
  }
  expect(f.get("train_mixed")!.subgroup_matrix).toBe(f.get("gpu_info")!.subgroup_matrix);
  for (const b of [1, 16]) {
    const g = f.get(`generate_batch_${b}`)!;
    expect(g.error).toBeUndefined();
    expect([g.batch, g.layers, g.new_tokens, g.same_tokens]).toEqual([b, 2, 4, true]);
  }
}, 400_000);

test("the CUDA-only figures are skipped with their reason; PyTorch's f32 ones follow what gpu_info found", async () => {
  const f = byName((await dryRun()).lines);
  const info = f.get("gpu_info")!;
  for (const name of ["torch_matmul_tf32", "torch_matmul_bf16", "torch_train_tf32", "torch_train_bf16"]) {
    const x = f.get(name)!;
    expect(x.value).toBeNull();
    expect(x.skipped).toBe(info.torch ? "dry run: CUDA figures are skipped" : info.torch_skipped);
  }
  expect(f.get("peak_memory")!.skipped).toBe("dry run: GPU memory is sampled with nvidia-smi on CUDA machines");
  if (info.torch === null) {
    expect(info.torch_skipped).toMatch(/^PyTorch is not importable \(/);
    for (const name of ["torch_matmul_f32", "torch_train_f32"]) expect(f.get(name)!.skipped).toBe(info.torch_skipped);
  } else {
    // PyTorch on the CPU: the same product and the same model as ours, from our training line
    expect(f.get("torch_matmul_f32")!.size).toBe("256x256x256");
    const t = f.get("torch_train_f32")!;
    expect(t.error).toBeUndefined();
    expect([t.config_from, t.layers, t.hidden, t.seq]).toEqual(["bench/train.ts", 6, 384, 256]);
  }
}, 400_000);

test("the summary repeats every value, names why each null is null, and gives the issue's ratios", async () => {
  const { lines } = await dryRun();
  const summary = lines.at(-1)!;
  const f = byName(lines);
  expect(summary.dry_run).toBe(true);
  expect(Object.keys(summary.values)).toEqual([...FIGURES]);
  for (const name of FIGURES) {
    expect(summary.values[name]).toBe(f.get(name)!.value);
    if (f.get(name)!.value === null)
      expect(summary.not_measured[name]).toBe(f.get(name)!.skipped ?? f.get(name)!.error);
  }
  expect(Object.keys(summary.not_measured)).toEqual(FIGURES.filter((n) => f.get(n)!.value === null));
  expect(summary.targets).toEqual(TARGETS);
  // no PyTorch bf16 in a dry run, so the ratio the tensor-core target is about stays null
  expect(summary.ratios.matmul_sgmat_vs_torch_bf16).toBeNull();
  expect(summary.seconds).toBeGreaterThan(0);
}, 400_000);

test("with no budget left every figure is skipped with the reason, and the script still exits 0", async () => {
  const { rc, lines, stderr } = await gpuSh("--dry-run", "--budget", "1");
  expect(rc, stderr).toBe(0);
  expect(lines.map((l) => l.figure)).toEqual(["gpu_info", ...FIGURES, "summary"]);
  expect(lines[0]!.error).toBe("cmd/gpu-info.ts: no time left in the 1 s budget");
  for (const f of lines.slice(1, -1)) {
    checkShape(f);
    expect(f.value).toBeNull();
  }
  // the steps never started; the figures that have their own reason (no PyTorch, dry run) keep it
  const f = byName(lines);
  expect(f.get("matmul_f32")!.skipped).toBe("no time left in the 1 s budget");
  expect(f.get("generate_batch_16")!.skipped).toBe("no time left in the 1 s budget");
}, 60_000);
