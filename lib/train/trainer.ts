// The training loop (epoch → step → micro-batch, as the seed framework has it), strategy-agnostic:
//   on_train_begin
//   epoch:  on_epoch_begin
//     step: on_step_begin; A micro-batches (on_batch_begin, strategy forward+backward, on_batch_end);
//           one readback of the step's loss and gradient norm; a NaN/Inf stops the run after saving
//           the last good state; lr from the schedule; AdamW (clipped); on_step_end (metrics, checkpoints)
//     on_epoch_end
//   on_train_end (final checkpoint)
// Every step runs in a tensor scope, so its intermediates return to the buffer pool.
import { gpu, readBuffers } from "../gpu/index.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { zeroGrad, setLossScale } from "../tensor/autograd.ts";
import { setMatmulPrecision } from "../ops/matmul_kernels.ts";
import { namedParams, type ModelParams } from "../model/params.ts";
import { lrAt, type ScheduleConfig } from "../optim/schedule.ts";
import { Rng } from "../data/rng.ts";
import type { ModelConfig } from "../model/config.ts";
import type { AdamW } from "../optim/adamw.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { TrainConfig } from "./config.ts";
import type { Callback, Hook, MetricsCallback } from "./callbacks.ts";
import type { ShardDataset } from "./dataset.ts";
import type { Sampler } from "./sampler.ts";
import type { Strategy } from "./strategy.ts";
import { saveCheckpoint, type Meta } from "./checkpoint.ts";

export class TrainingStopped extends Error {
  code = "E_STOPPED";
}

export interface TrainerParts {
  cfg: TrainConfig;
  strategy: Strategy;
  model: ModelConfig;
  params: ModelParams;
  optimizer: AdamW;
  data: ShardDataset;
  val: ShardDataset | null;
  sampler: Sampler;
  callbacks: Callback[];
  metrics: MetricsCallback;
  tokenizer: Tokenizer | null;
  tokenizerDir?: string;
  resumed?: Meta;
}

export class Trainer {
  readonly cfg: TrainConfig;
  readonly strategy: Strategy;
  readonly model: ModelConfig;
  readonly params: ModelParams;
  readonly optimizer: AdamW;
  readonly data: ShardDataset;
  readonly val: ShardDataset | null;
  readonly sampler: Sampler;
  readonly tokenizer: Tokenizer | null;
  readonly seqLen: number;
  readonly totalSteps: number;
  readonly startStep: number;
  rng: Rng;
  step = 0;
  consumed = 0;
  lastCheckpointStep = -1;
  lastCheckpoint: string | null = null;
  stopReason: string | null = null;
  stopRequested: string | null = null;
  /** aborted (reason: "SIGINT" or "SIGTERM") when a signal asks the run to stop: waits on user code end at once */
  readonly stop = new AbortController();
  history: Record<string, number>[] = [];
  /** "mixed": f16 matmul inputs with f32 accumulation and dynamic loss scaling; "f32" */
  readonly precision: "f32" | "mixed";
  lossScale = 1;
  private goodSteps = 0;
  /** the weights this stage started from (--init), kept across resumes: DPO/GRPO's reference */
  readonly stageInit: string | null;
  private callbacks: Callback[];
  private metricsCb: MetricsCallback;
  private tokenizerDir?: string;

  constructor(p: TrainerParts) {
    this.cfg = p.cfg;
    this.strategy = p.strategy;
    this.model = p.model;
    this.params = p.params;
    this.optimizer = p.optimizer;
    this.data = p.data;
    this.val = p.val;
    this.sampler = p.sampler;
    this.callbacks = p.callbacks;
    this.metricsCb = p.metrics;
    this.tokenizer = p.tokenizer;
    this.tokenizerDir = p.tokenizerDir;
    this.seqLen = p.data.manifest.seq_len;
    const perEpoch = Math.floor(this.sampler.batchesPerEpoch(p.cfg.batch_size) / p.cfg.accumulation_steps);
    if (perEpoch < 1 && p.cfg.max_steps === undefined)
      throw new Error(`${p.data.rows} rows make no full step of ${p.cfg.batch_size}×${p.cfg.accumulation_steps}; lower --batch-size or --accumulation-steps`);
    this.totalSteps = p.cfg.max_steps ?? p.cfg.n_epoch * perEpoch;
    this.rng = new Rng(p.cfg.seed + 17);
    this.stageInit = p.cfg.init ?? p.resumed?.init ?? null;
    // auto: mixed where the adapter has tensor cores (subgroup matrices); elsewhere f16 inputs would
    // only cost accuracy
    this.precision = p.cfg.precision === "auto" ? (gpu().subgroupMatrixConfigs.length ? "mixed" : "f32") : p.cfg.precision;
    if (this.precision === "mixed") {
      this.lossScale = p.resumed?.loss_scale ?? p.cfg.loss_scale;
      this.goodSteps = p.resumed?.loss_scale_good_steps ?? 0;
    }
    if (p.resumed) {
      this.step = p.resumed.step;
      this.consumed = p.resumed.consumed_samples;
      this.rng = Rng.fromState(p.resumed.rng);
      this.history = p.resumed.metrics ?? [];
      this.lastCheckpointStep = this.step;
    }
    this.startStep = this.step;
  }

  get epoch(): number {
    return this.sampler.epoch;
  }

  emit(o: Record<string, unknown>): void {
    const line = JSON.stringify(o);
    console.log(line);
    this.metricsCb.write(line);
  }

  private async fire(hook: Hook, ...args: any[]): Promise<void> {
    for (const cb of this.callbacks) {
      const f = cb[hook] as ((...a: any[]) => unknown) | undefined;
      if (f) await f.call(cb, this, ...args);
    }
  }

  schedule(): ScheduleConfig {
    const c = this.cfg;
    return { name: c.schedule, maxLr: c.max_lr, minRate: c.min_rate, warmup: c.warmup_steps, totalSteps: this.totalSteps, cycle: c.sgdr_cycle, tMult: c.t_mult, decayFraction: c.wsd_decay_fraction };
  }

  /** The next micro-batch's rows; crosses into the next epoch when this one is used up. */
  private nextIndices(): Uint32Array {
    let idx = this.sampler.next(this.cfg.batch_size);
    if (!idx) {
      this.sampler.nextEpoch();
      idx = this.sampler.next(this.cfg.batch_size);
      if (!idx) throw new Error(`the dataset has ${this.data.rows} rows, fewer than one batch of ${this.cfg.batch_size}`);
    }
    return idx;
  }

  async run(): Promise<void> {
    setMatmulPrecision(this.precision === "mixed" ? "f16" : "f32");
    setLossScale(this.lossScale);
    const g = gpu();
    this.emit({ event: "start", strategy: this.strategy.name, precision: this.precision, ...(this.precision === "mixed" ? { loss_scale: this.lossScale } : {}), provider: g.provider, adapter: g.info.description || g.info.device, step: this.step, total_steps: this.totalSteps });
    try {
      await this.loop();
    } finally {
      setMatmulPrecision("f32");
      setLossScale(1);
    }
  }

  private async loop(): Promise<void> {
    await this.strategy.init?.(this);
    await this.fire("on_train_begin");
    let epochSeen = -1;
    while (this.step < this.totalSteps) {
      if (this.sampler.epoch !== epochSeen) {
        if (epochSeen >= 0) await this.fire("on_epoch_end");
        epochSeen = this.sampler.epoch;
        await this.fire("on_epoch_begin");
      }
      await this.fire("on_step_begin");
      const t0 = performance.now();
      const A = this.cfg.accumulation_steps;
      const batches = Array.from({ length: A }, () => this.nextIndices());
      const rows = batches.map((idx) => this.data.batch(idx, this.strategy.keys));
      const windowCount = rows.reduce((n, r, i) => n + this.strategy.count(r, batches[i]!.length), 0);
      const { loss, norm, metrics, tokens } = await scopeAsync(async () => {
        const losses: number[] = [], lossTensors = [];
        const metrics: Record<string, number> = {};
        let tokens = 0;
        for (let b = 0; b < A; b++) {
          await this.fire("on_batch_begin", b);
          const r = await this.strategy.batch(this, rows[b]!, batches[b]!, Math.max(windowCount, 1));
          if (typeof r.loss === "number") losses.push(r.loss);
          else lossTensors.push(r.loss);
          for (const [k, v] of Object.entries(r.metrics ?? {})) metrics[k] = (metrics[k] ?? 0) + v;
          tokens += r.tokens;
          await this.fire("on_batch_end", b);
        }
        this.optimizer.computeNorm(this.lossScale);
        const got = await readBuffers([...lossTensors.map((t) => ({ buffer: t.buffer, bytes: 4 })), { buffer: this.optimizer.norm.stats.buffer, bytes: 8 }]);
        for (let i = 0; i < lossTensors.length; i++) losses.push(new Float32Array(got[i]!)[0]!);
        const norm = new Float32Array(got[got.length - 1]!)[0]!;
        return { loss: losses.reduce((a, x) => a + x, 0), norm, metrics, tokens };
      });
      if (this.precision === "mixed" && Number.isFinite(loss) && !Number.isFinite(norm)) {
        // the scaled gradients overflowed f16: skip this update, halve the scale (dynamic loss scaling)
        zeroGrad(namedParams(this.params).values());
        this.step++;
        this.consumed += A * this.cfg.batch_size;
        this.lossScale = Math.max(1, this.lossScale / 2);
        setLossScale(this.lossScale);
        this.goodSteps = 0;
        this.emit({ event: "skip", step: this.step, loss, loss_scale: this.lossScale });
        this.history.push({ step: this.step, loss });
        await this.fire("on_step_end", { step: this.step, epoch: this.sampler.epoch, loss, lr: 0, grad_norm: norm, tokens, tokens_per_s: 0, skipped: 1, loss_scale: this.lossScale });
        if (this.stopRequested) {
          this.stopReason = this.stopRequested;
          break;
        }
        continue;
      }
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        // the parameters are still the last good ones: this step's update has not been applied
        zeroGrad(namedParams(this.params).values());
        this.stopReason = "nan";
        await this.checkpoint("nan");
        throw new TrainingStopped(`loss is ${loss}, gradient norm ${norm} at step ${this.step + 1}; saved the last good state in ${this.lastCheckpoint} (lower --max-lr, check the data)`);
      }
      const lr = lrAt(this.step + 1, this.schedule());
      this.optimizer.update(lr);
      zeroGrad(namedParams(this.params).values());
      this.step++;
      this.consumed += A * this.cfg.batch_size;
      const seconds = (performance.now() - t0) / 1000;
      const m: Record<string, number> = {
        step: this.step, epoch: this.sampler.epoch, loss, lr, grad_norm: norm, tokens, tokens_per_s: tokens / seconds, ...metrics,
      };
      if (this.precision === "mixed") {
        m.loss_scale = this.lossScale;
        if (++this.goodSteps >= this.cfg.loss_scale_window) {
          this.goodSteps = 0;
          this.lossScale = Math.min(this.lossScale * 2, 2 ** 24);
          setLossScale(this.lossScale);
        }
      }
      this.history.push({ step: this.step, loss });
      await this.strategy.onStepEnd?.(this);
      await this.fire("on_step_end", m);
      if (this.val && this.cfg.eval_interval > 0 && (this.step % this.cfg.eval_interval === 0 || this.step === this.totalSteps)) await this.evaluate();
      if (this.stopRequested) {
        this.stopReason = this.stopRequested;
        break;
      }
    }
    await this.fire("on_epoch_end");
    await this.fire("on_train_end");
  }

  /** Mean validation loss over the whole val split (no gradients); emits an "eval" event. */
  async evaluate(): Promise<number | null> {
    if (!this.val || !this.strategy.evalBatch) return null;
    const B = this.cfg.batch_size;
    let total = 0, count = 0;
    for (let s = 0; s < this.val.rows; s += B) {
      const idx = Uint32Array.from({ length: Math.min(B, this.val.rows - s) }, (_, i) => s + i);
      const r = await scopeAsync(() => this.strategy.evalBatch!(this, this.val!.batch(idx, this.strategy.keys), idx.length));
      total += r.loss;
      count += r.count;
    }
    const loss = count ? total / count : NaN;
    this.emit({ event: "eval", step: this.step, val_loss: loss, val_tokens: count });
    return loss;
  }

  async checkpoint(reason: string): Promise<string> {
    const meta: Meta = {
      format: "bunlm-checkpoint",
      strategy: this.strategy.name,
      step: this.step,
      epoch: this.sampler.epoch,
      consumed_samples: this.consumed,
      sampler: this.sampler.state(),
      rng: this.rng.state(),
      config: this.cfg as unknown as Record<string, unknown>,
      data: { dir: this.cfg.data, tokenizer_hash: this.data.manifest.tokenizer.hash, type: this.data.manifest.type },
      init: this.stageInit,
      metrics: this.history,
      reason,
      precision: this.precision,
      loss_scale: this.lossScale,
      loss_scale_good_steps: this.goodSteps,
    };
    const dir = await saveCheckpoint(this.cfg.out, { config: this.model, params: this.params, optimizer: this.optimizer, meta, tokenizerDir: this.tokenizerDir, keep: this.cfg.keep });
    this.lastCheckpointStep = this.step;
    this.lastCheckpoint = dir;
    this.emit({ event: "checkpoint", step: this.step, path: dir, reason });
    return dir;
  }
}
