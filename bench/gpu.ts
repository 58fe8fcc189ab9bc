// bash bench/gpu.sh [--dry-run] [--budget SECONDS]      (gpu.sh finds Bun, then runs this file)
// Every GPU figure of issue #16 in one run, one JSON line each as it is measured, then a summary line
// to paste into docs/gpu.md:
//   gpu_info                      adapter, features, subgroup-matrix configs, the path mixed precision takes
//   matmul_f32, matmul_sgmat      bench/matmul.ts at 4096³: f32, and f16 operands with f32 accumulation
//                                 on subgroup matrices (BUNLM_SUBGROUP_MATRIX=native)
//   torch_matmul_{f32,tf32,bf16}  PyTorch's cuBLAS on the same product
//   train_{f32,mixed}             bench/train.ts --gpu-config (the ~100M model): tokens/s of whole steps
//   torch_train_{f32,tf32,bf16}   PyTorch on the same model and batch (bf16 is autocast)
//   generate_batch_{1,16}         bench/model.ts: tokens/s decoding 1 and 16 prompts together
//   peak_memory                   the most GPU memory nvidia-smi saw during a bunlm step
// Each figure line is {"figure", "value": number | null, "unit", ...}, and a null value comes with
// "skipped" (not measurable here, and why) or "error" (what failed); a failing step never stops the
// ones after it. Every step runs under `timeout` in its own process group; the steps' limits add up to
// the budget (330 s: the issue's 6 minutes less the time to start), and a step that ends early leaves
// its time to the next. PyTorch comes from the python3 that imports it (BUNLM_PYTHON to choose one);
// without it, or without CUDA, its figures are skipped, never failed.
// --dry-run: the same steps at sizes lavapipe finishes in about a minute (matmul 256³, the small
// training config, a 2-layer model for generation), the subgroup-matrix step through the emulation,
// and the CUDA-only parts (TF32, bf16, nvidia-smi) skipped with their reason.
import { defineCommand } from "citty";
import { join } from "node:path";
import { runCli } from "../cmd/_cli.ts";
import { InputError } from "../lib/base/errors.ts";
import { log } from "../lib/base/log.ts";

const root = join(import.meta.dir, "..");
const bun = process.execPath;

/** Every figure a run prints, in order (gpu_info and summary besides). */
export const FIGURES = [
  "matmul_f32",
  "matmul_sgmat",
  "torch_matmul_f32",
  "torch_matmul_tf32",
  "torch_matmul_bf16",
  "train_f32",
  "train_mixed",
  "torch_train_f32",
  "torch_train_tf32",
  "torch_train_bf16",
  "generate_batch_1",
  "generate_batch_16",
  "peak_memory",
] as const;
export type FigureName = (typeof FIGURES)[number];

/** The issue's targets on an H100/H200: each ratio at least this. */
export const TARGETS = {
  matmul_sgmat_vs_torch_bf16: 0.4,
  train_mixed_vs_torch_tf32: 1.0,
  train_f32_vs_torch_f32: 0.8,
} as const;

type Json = Record<string, unknown>;
interface Figure extends Json {
  figure: FigureName;
  value: number | null;
  unit: string;
  skipped?: string;
  error?: string;
}

/** bench/train.ts's two configs, for PyTorch when our training printed no line to copy them from. */
export const TRAIN_CONFIGS = {
  small: { layers: 6, hidden: 384, heads: 6, kv: 2, inter: 1024, vocab: 8192, seq: 256, batch: 1 },
  gpu: { layers: 12, hidden: 768, heads: 12, kv: 4, inter: 2048, vocab: 32000, seq: 1024, batch: 8 },
};
type TrainShape = typeof TRAIN_CONFIGS.gpu;

interface Plan {
  dry: boolean;
  matmul: number; // N of the N³ product
  matmulReps: number;
  sgmatPath: "native" | "emulate";
  trainArgs: string[];
  steps: number;
  genModel: string[]; // bench/model.ts's shape flags, for generation
  genTokens: number;
  /** each step's own limit in seconds; they add up to the budget */
  limits: Record<StepName, number>;
}
type StepName =
  | "info"
  | "matmul_f32"
  | "matmul_sgmat"
  | "torch_matmul"
  | "train_f32"
  | "train_mixed"
  | "torch_train"
  | "generate";

const GPU_PLAN: Plan = {
  dry: false,
  matmul: 4096,
  matmulReps: 20,
  sgmatPath: "native",
  // the recompute figures are bench/train.ts's own (run it alone): they would double this step's time
  trainArgs: ["--gpu-config", "--no-recompute"],
  steps: 4,
  genModel: [], // filled from the training config
  genTokens: 64,
  limits: {
    info: 25,
    matmul_f32: 45,
    matmul_sgmat: 30,
    torch_matmul: 40,
    train_f32: 60,
    train_mixed: 60,
    torch_train: 40,
    generate: 30,
  },
};

const DRY_PLAN: Plan = {
  dry: true,
  matmul: 256,
  matmulReps: 2,
  sgmatPath: "emulate",
  trainArgs: ["--no-recompute"],
  steps: 1,
  genModel: [
    "--layers",
    "2",
    "--hidden",
    "64",
    "--heads",
    "2",
    "--kv-heads",
    "1",
    "--intermediate",
    "128",
    "--vocab",
    "256",
  ],
  genTokens: 4,
  limits: {
    info: 30,
    matmul_f32: 60,
    matmul_sgmat: 60,
    torch_matmul: 60,
    train_f32: 120,
    train_mixed: 120,
    torch_train: 90,
    generate: 60,
  },
};

interface Ran {
  rc: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** argv under coreutils' timeout, which signals the whole process group (bench/matmul.ts's child too). */
async function spawn(argv: string[], seconds: number, env: Record<string, string | undefined> = {}): Promise<Ran> {
  const t0 = performance.now();
  const p = Bun.spawn(["timeout", "-k", "5", String(Math.max(1, Math.floor(seconds))), ...argv], {
    cwd: root,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const rc = await p.exited;
  return { rc, stdout, stderr, seconds: (performance.now() - t0) / 1000 };
}

/** The JSON lines a bench printed. */
const jsonLines = (out: string): Json[] =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));

/** What went wrong, in one line: the timeout, or the last line the process wrote to stderr. */
function why(r: Ran, limit: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
  const lines = r.stderr.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").split(/[\r\n]+/);
  const last =
    lines
      .map((l) => l.trim())
      .filter(Boolean)
      .pop()
      ?.replace(/^bunlm: error: /, "") ?? "";
  if (r.rc === 124 || r.rc === 137) return `timed out after ${Math.floor(limit)} s${last ? ` (last: ${last})` : ""}`;
  return last || `exited with code ${r.rc} and no message`;
}

/** The most GPU memory (MiB) nvidia-smi reports while a step runs, sampled every 100 ms. */
function sampleGpuMemory(): () => Promise<number | null> {
  const p = Bun.spawn(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "100"], {
    stdout: "pipe",
    stderr: "ignore",
  });
  const text = new Response(p.stdout).text();
  return async () => {
    p.kill();
    await p.exited;
    const mib = (await text)
      .split("\n")
      .map(Number)
      .filter((x) => Number.isFinite(x) && x > 0);
    return mib.length ? Math.max(...mib) : null;
  };
}

const hasCommand = (name: string) => Bun.spawnSync(["sh", "-c", `command -v ${name}`]).exitCode === 0;

interface Torch {
  python: string;
  torch: string;
  cuda: boolean;
  device: string;
}

/** The first python that imports torch: BUNLM_PYTHON, else python3 on the PATH, else /usr/bin/python3. */
async function findTorch(limit: number): Promise<{ torch: Torch | null; reason: string }> {
  const tried: string[] = [];
  const pythons = process.env.BUNLM_PYTHON ? [process.env.BUNLM_PYTHON] : ["python3", "/usr/bin/python3"];
  for (const python of pythons) {
    const r = await spawn([python, join(root, "bench", "torch_device.py")], limit);
    const line = jsonLines(r.stdout)[0];
    if (r.rc === 0 && line) return { torch: { python, ...(line as Omit<Torch, "python">) }, reason: "" };
    tried.push(`${python}: ${why(r, limit)}`);
  }
  return { torch: null, reason: `PyTorch is not importable (${tried.join("; ")})` };
}

const main = defineCommand({
  meta: { name: "bench-gpu", description: "every GPU figure of the tensor-core issue, as JSON lines" },
  args: {
    "dry-run": {
      type: "boolean",
      default: false,
      description: "tiny sizes on any adapter (lavapipe), the CUDA-only parts skipped",
    },
    budget: { type: "string", default: "", description: "seconds for all steps (default 330, dry run 600)" },
    probe: { type: "boolean", default: false, description: "internal: print this process's adapter facts" },
  },
  async run({ args }) {
    if (args.probe) return probe();
    const plan = args["dry-run"] ? DRY_PLAN : GPU_PLAN;
    const order = Object.keys(plan.limits) as StepName[];
    const budget = args.budget ? Number(args.budget) : order.reduce((s, k) => s + plan.limits[k], 0);
    if (!(budget > 0)) throw new InputError(`--budget ${args.budget}: expected a number of seconds`);
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    /** This step's limit: what the budget leaves once the later steps' own limits are set aside. */
    const limitFor = (step: StepName): number | null => {
      const later = order.slice(order.indexOf(step) + 1).reduce((s, k) => s + plan.limits[k], 0);
      const left = budget - elapsed();
      const t = left - later >= 5 ? left - later : Math.min(plan.limits[step], left);
      return t >= 5 ? t : null;
    };
    const figures = new Map<FigureName, Figure>();
    const emit = (f: Figure) => {
      figures.set(f.figure, f);
      console.log(JSON.stringify(f));
    };
    const fail = (names: FigureName[], unit: string, how: { skipped: string } | { error: string }, extra = {}) => {
      for (const figure of names) emit({ figure, value: null, unit, ...how, ...extra });
    };
    const noCuda = (reason: string) => (plan.dry ? "dry run: CUDA figures are skipped" : reason);
    const memory: Record<string, number> = {};
    const sample = !plan.dry && hasCommand("nvidia-smi");

    let failed = ""; // the last step's error
    /** Run one step's command under its limit; null (its figures failed, with why) when it failed or had no time. */
    const step = async (name: StepName, names: FigureName[], unit: string, argv: string[], env = {}) => {
      const limit = limitFor(name);
      if (limit === null) {
        failed = `no time left in the ${budget} s budget`;
        fail(names, unit, { skipped: failed });
        return null;
      }
      log.info(`gpu.sh: ${name} (at most ${Math.floor(limit)} s)`);
      const stop = sample ? sampleGpuMemory() : null;
      const r = await spawn(argv, limit, env);
      const peak = stop ? await stop() : null;
      if (peak !== null) memory[name] = peak;
      if (r.rc !== 0) {
        failed = why(r, limit);
        fail(names, unit, { error: failed }, { seconds: +r.seconds.toFixed(1) });
        return null;
      }
      return { lines: jsonLines(r.stdout), seconds: +r.seconds.toFixed(1), gpu_memory_peak_mib: peak };
    };

    // 1. the adapter, what mixed precision runs on, and PyTorch
    const infoLimit = limitFor("info") ?? 5;
    const torchFound = await findTorch(Math.min(60, infoLimit));
    const torch = torchFound.torch;
    const smi = hasCommand("nvidia-smi")
      ? (
          await spawn(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 15)
        ).stdout.trim()
      : null;
    const info = await step("info", [], "", [bun, join(root, "cmd", "gpu-info.ts")]);
    const probed = info ? await spawn([bun, import.meta.path, "--probe"], 30) : null;
    const adapter = { ...(info?.lines[0] ?? {}), ...(probed?.rc === 0 ? jsonLines(probed.stdout)[0] : {}) };
    const infoLine = {
      figure: "gpu_info",
      dry_run: plan.dry,
      nvidia_smi: smi,
      torch,
      ...(torch ? {} : { torch_skipped: torchFound.reason }),
      ...adapter,
      ...(info ? {} : { error: `cmd/gpu-info.ts: ${failed}` }),
    };
    console.log(JSON.stringify(infoLine));
    const sgmatPath = (adapter as Json).subgroup_matrix ?? null;

    // 2. matmul N³: ours in f32 and on subgroup matrices, then PyTorch
    const N = plan.matmul;
    const matmulArgs = [
      bun,
      join(root, "bench", "matmul.ts"),
      "--sizes",
      String(N),
      "--providers",
      "dawn",
      "--no-torch",
      "--reps",
      String(plan.matmulReps),
    ];
    for (const [name, precision, env] of [
      ["matmul_f32", "f32", {}],
      ["matmul_sgmat", "mixed", { BUNLM_SUBGROUP_MATRIX: plan.sgmatPath }],
    ] as const) {
      const r = await step(name, [name], "GFLOPS", [...matmulArgs, "--precision", precision], env);
      const l = r?.lines[0];
      if (r && !l) fail([name], "GFLOPS", { error: "bench/matmul.ts printed no figure" });
      else if (r && l)
        emit({
          figure: name,
          value: l.gflops as number,
          unit: "GFLOPS",
          size: `${N}x${N}x${N}`,
          precision: l.precision,
          ...(l.subgroup_matrix ? { subgroup_matrix: l.subgroup_matrix } : {}),
          kernel: l.kernel,
          seconds: r.seconds,
        });
    }
    const torchMatmul: FigureName[] = ["torch_matmul_f32", "torch_matmul_tf32", "torch_matmul_bf16"];
    const cudaModes = torch?.cuda && !plan.dry;
    if (!torch) fail(torchMatmul, "GFLOPS", { skipped: torchFound.reason });
    else {
      const modes = cudaModes ? ["f32", "tf32", "bf16"] : ["f32"];
      const r = await step(
        "torch_matmul",
        torchMatmul.slice(0, modes.length),
        "GFLOPS",
        [torch.python, join(root, "bench", "torch_matmul.py"), JSON.stringify([[N, N, N]]), modes.join(",")],
        { PYTHONUNBUFFERED: "1" },
      );
      const by = r?.lines[0]?.by_mode as Record<string, Record<string, number>> | undefined;
      if (r && !by) fail(torchMatmul.slice(0, modes.length), "GFLOPS", { error: "torch_matmul.py printed no figure" });
      for (const mode of modes)
        if (by)
          emit({
            figure: `torch_matmul_${mode}` as FigureName,
            value: +by[mode]![`${N}x${N}x${N}`]!.toFixed(1),
            unit: "GFLOPS",
            size: `${N}x${N}x${N}`,
            torch_device: r!.lines[0]!.device,
            seconds: r!.seconds,
          });
      if (!cudaModes)
        fail(torchMatmul.slice(1), "GFLOPS", { skipped: noCuda(`PyTorch ${torch.torch} sees no CUDA device`) });
    }

    // 3. training tokens/s: ours in f32 and mixed, then PyTorch on the same shape
    const trainLines: Record<string, Json> = {};
    for (const [name, precision] of [
      ["train_f32", "f32"],
      ["train_mixed", "mixed"],
    ] as const) {
      const r = await step(name, [name], "tokens/s", [
        bun,
        join(root, "bench", "train.ts"),
        ...plan.trainArgs,
        "--no-torch",
        "--steps",
        String(plan.steps),
        "--precision",
        precision,
      ]);
      const l = r?.lines[0];
      if (r && !l) fail([name], "tokens/s", { error: "bench/train.ts printed no figure" });
      else if (r && l) {
        trainLines[name] = l;
        const { tokens_per_s, ratio, torch_device, ...rest } = l;
        emit({
          figure: name,
          value: tokens_per_s as number,
          unit: "tokens/s",
          ...rest,
          ...(precision === "mixed" ? { subgroup_matrix: sgmatPath } : {}),
          steps: plan.steps,
          seconds: r.seconds,
          gpu_memory_peak_mib: r.gpu_memory_peak_mib,
        });
      }
    }
    const copied = (trainLines.train_f32 ?? trainLines.train_mixed) as Partial<TrainShape> | undefined;
    const shape: TrainShape = copied?.layers
      ? (Object.fromEntries(
          Object.keys(TRAIN_CONFIGS.gpu).map((k) => [k, copied[k as keyof TrainShape]]),
        ) as TrainShape)
      : plan.dry
        ? TRAIN_CONFIGS.small
        : TRAIN_CONFIGS.gpu;
    const torchTrain: FigureName[] = ["torch_train_f32", "torch_train_tf32", "torch_train_bf16"];
    if (!torch) fail(torchTrain, "tokens/s", { skipped: torchFound.reason });
    else {
      const modes = cudaModes ? ["f32", "tf32", "bf16"] : ["f32"];
      // bench/train.ts's model as a Hugging Face config: tied embeddings, RoPE 10000, RMSNorm eps 1e-5
      const raw = {
        vocab_size: shape.vocab,
        hidden_size: shape.hidden,
        num_hidden_layers: shape.layers,
        num_attention_heads: shape.heads,
        num_key_value_heads: shape.kv,
        intermediate_size: shape.inter,
        tie_word_embeddings: true,
        max_position_embeddings: shape.seq,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
      };
      const r = await step(
        "torch_train",
        torchTrain.slice(0, modes.length),
        "tokens/s",
        [
          torch.python,
          join(root, "bench", "torch_train.py"),
          JSON.stringify(raw),
          String(shape.batch),
          String(shape.seq),
          String(plan.steps),
          modes.join(","),
        ],
        { PYTHONUNBUFFERED: "1" },
      );
      for (const mode of modes) {
        const l = r?.lines.find((x) => x.mode === mode);
        const figure = `torch_train_${mode}` as FigureName;
        if (r && !l) fail([figure], "tokens/s", { error: "torch_train.py printed no figure" });
        else if (r && l)
          emit({
            figure,
            value: +(l.torch_tokens_per_s as number).toFixed(1),
            unit: "tokens/s",
            ...shape,
            config_from: copied?.layers ? "bench/train.ts" : "bench/gpu.ts TRAIN_CONFIGS",
            torch_device: l.torch_device,
            torch_peak_mib: typeof l.torch_peak_bytes === "number" ? Math.round(l.torch_peak_bytes / 2 ** 20) : null,
            steps: plan.steps,
          });
      }
      if (!cudaModes)
        fail(torchTrain.slice(1), "tokens/s", { skipped: noCuda(`PyTorch ${torch.torch} sees no CUDA device`) });
    }

    // 4. generation tokens/s, decoding 1 and 16 prompts together (the training model, where it is ours)
    const genModel = plan.dry
      ? plan.genModel
      : [
          ...["--layers", shape.layers, "--hidden", shape.hidden, "--heads", shape.heads, "--kv-heads", shape.kv],
          ...["--intermediate", shape.inter, "--vocab", shape.vocab],
        ].map(String);
    const gen: FigureName[] = ["generate_batch_1", "generate_batch_16"];
    const g = await step("generate", gen, "tokens/s", [
      bun,
      join(root, "bench", "model.ts"),
      ...genModel,
      "--seq",
      "64",
      "--steps",
      "1",
      "--no-torch",
      "--gen-tokens",
      String(plan.genTokens),
      "--gen-batches",
      "1,16",
    ]);
    const gl = g?.lines.find((l) => l.figure === "generate_batch");
    if (g && !gl) fail(gen, "tokens/s", { error: "bench/model.ts printed no generate_batch line" });
    for (const b of [1, 16])
      if (gl) {
        const v = gl[`tokens_per_s_batch_${b}`];
        const figure = `generate_batch_${b}` as FigureName;
        if (typeof v !== "number") fail([figure], "tokens/s", { error: `bench/model.ts printed no batch-${b} figure` });
        else
          emit({
            figure,
            value: v,
            unit: "tokens/s",
            batch: b,
            layers: gl.layers,
            hidden: gl.hidden,
            vocab: gl.vocab,
            params: gl.params,
            prompt_tokens: gl.prompt_tokens,
            new_tokens: gl.new_tokens,
            same_tokens: gl.same_tokens,
            gpu_memory_peak_mib: g!.gpu_memory_peak_mib,
          });
      }

    // 5. peak GPU memory over our steps, each step's beside it
    // PyTorch's steps are sampled too, for comparison, but the figure is ours
    const peaks = Object.entries(memory)
      .filter(([k]) => !k.startsWith("torch"))
      .map(([, mib]) => mib);
    if (plan.dry)
      fail(["peak_memory"], "MiB", { skipped: "dry run: GPU memory is sampled with nvidia-smi on CUDA machines" });
    else if (!sample)
      fail(["peak_memory"], "MiB", { skipped: "nvidia-smi not found: GPU memory is sampled only on NVIDIA machines" });
    else if (!peaks.length) fail(["peak_memory"], "MiB", { error: "nvidia-smi gave no sample" });
    else
      emit({
        figure: "peak_memory",
        value: Math.max(...peaks),
        unit: "MiB",
        source: "nvidia-smi memory.used",
        by_step: memory,
      });

    // 6. the summary: every value, the ratios the issue sets targets for
    const v = (n: FigureName) => figures.get(n)?.value ?? null;
    const ratio = (a: FigureName, b: FigureName) => {
      const x = v(a),
        y = v(b);
      return x !== null && y ? +(x / y).toFixed(3) : null;
    };
    console.log(
      JSON.stringify({
        figure: "summary",
        dry_run: plan.dry,
        adapter: (adapter as Json).adapter ?? null,
        torch_device: torch?.device ?? null,
        seconds: +elapsed().toFixed(1),
        values: Object.fromEntries(FIGURES.map((n) => [n, v(n)])),
        ratios: {
          matmul_f32_vs_torch_f32: ratio("matmul_f32", "torch_matmul_f32"),
          matmul_sgmat_vs_torch_bf16: ratio("matmul_sgmat", "torch_matmul_bf16"),
          train_f32_vs_torch_f32: ratio("train_f32", "torch_train_f32"),
          train_mixed_vs_torch_tf32: ratio("train_mixed", "torch_train_tf32"),
          train_mixed_vs_torch_bf16: ratio("train_mixed", "torch_train_bf16"),
        },
        targets: TARGETS,
        not_measured: Object.fromEntries(
          FIGURES.filter((n) => v(n) === null).map((n) => [n, figures.get(n)?.skipped ?? figures.get(n)?.error ?? "?"]),
        ),
      }),
    );
  },
});

/** The adapter facts gpu-info leaves out: every subgroup-matrix config, and why native is off. */
async function probe(): Promise<void> {
  const { initGpu } = await import("../lib/gpu/index.ts");
  const { nativeUnavailable, subgroupMatrixPath } = await import("../lib/ops/_matmul_variants.ts");
  const g = await initGpu();
  const l = g.limits;
  console.log(
    JSON.stringify({
      subgroup_matrix_config_list: g.subgroupMatrixConfigs,
      native_unavailable: nativeUnavailable(g),
      subgroup_matrix: subgroupMatrixPath(),
      limits: {
        maxBufferSize: l.maxBufferSize,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    }),
  );
}

if (import.meta.main) await runCli(main);
