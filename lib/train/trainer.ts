// The training loop (epoch → step → micro-batch, as the seed framework has it), strategy-agnostic:
//   on_train_begin
//   epoch:  on_epoch_begin
//     step: on_step_begin; A micro-batches (on_batch_begin, strategy forward+backward, on_batch_end);
//           one readback of the step's loss and gradient norm; a NaN/Inf stops the run after saving
//           the last good state; lr from the schedule; AdamW or Muon (clipped); on_step_end (metrics, checkpoints)
//     on_epoch_end
//   on_train_end (final checkpoint)
// Every step runs in a tensor scope, so its intermediates return to the buffer pool.
// A step either completes (its update applied, the step counted) or leaves no trace: when it fails
// or a signal interrupts a wait inside it (a reward command, a callback), its gradients are dropped
// and the sampler and RNG go back to where the step began, so the checkpoint saved then resumes
// exactly there. Errors save the last finished step once before they end the run; a state with a
// non-finite weight or moment is never saved.
// Data parallel (dp, lib/train/dist.ts): every rank runs this loop on its slice of each global
// micro-batch; the normalizer, gradients, losses and metrics are summed over the ranks, so every rank
// applies the same update and rank 0 reports what one process with the global batch would. Decisions
// that end a step or the run (a stop signal, a non-finite loss, a failed checkpoint, replicas that
// drifted apart) are agreed on through the same collectives, so no rank waits for one that left.
import { gpu, readBuffers } from "../gpu/index.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { zeroGrad } from "../tensor/autograd.ts";
import { subgroupMatrixPath, withMatmulPrecision } from "../ops/index.ts";
import { backward } from "../ops/backward.ts";
import { withRecompute } from "../tensor/checkpoint.ts";
import { GradScaler } from "../optim/grad_scaler.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { namedParams, type ModelParams } from "../model/params.ts";
import type { Lora } from "../model/lora.ts";
import { lrAt, type ScheduleConfig } from "../optim/schedule.ts";
import { Rng } from "../base/rng.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Optimizer } from "../optim/muon.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { TrainConfig } from "./config.ts";
import type { Callback, Hook, MetricsCallback } from "./callbacks.ts";
import type { ShardDataset } from "./dataset.ts";
import type { Sampler, SamplerState } from "./sampler.ts";
import type { Strategy } from "./strategy.ts";
import { listCheckpoints, NonFiniteState, saveCheckpoint, stepDirName, type Meta } from "./checkpoint.ts";
import { StopRequested } from "./deadline.ts";
import { InputError } from "../base/errors.ts";
import { fileSum } from "../io/files.ts";
import { recordedSums, type WeightDtype } from "../model/checkpoint.ts";
import type { FileSum } from "../io/checksum.ts";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { CHECK_EVERY, type DataParallel } from "./dist.ts";

export class TrainingStopped extends Error {
  code = "E_STOPPED";
}

export interface TrainerParts {
  cfg: TrainConfig;
  strategy: Strategy;
  model: ModelConfig;
  params: ModelParams;
  optimizer: Optimizer;
  data: ShardDataset;
  val: ShardDataset | null;
  sampler: Sampler;
  callbacks: Callback[];
  metrics: MetricsCallback;
  tokenizer: Tokenizer | null;
  tokenizerDir?: string;
  resumed?: Meta;
  /** where events (JSON lines) go besides metrics.jsonl: the command connects stdout */
  onEvent?: (line: string) => void;
  /** the ranks of a data-parallel run (null: one process) */
  dp?: DataParallel | null;
  /** LoRA: the adapters (the optimizer's only parameters) and the base directory they sit on */
  lora?: TrainLora | null;
}

export interface TrainLora {
  adapters: Lora;
  /** the base weights' directory (absolute): what the checkpoints' adapter_config.json names */
  base: string;
}

// The parts a Trainer is built from are its own fields: the constructor assigns them all at once.
export interface Trainer extends Readonly<Omit<TrainerParts, "resumed" | "dp">> {}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: Object.assign in the constructor sets every field of the interface
export class Trainer {
  readonly seqLen: number;
  readonly dp: DataParallel | null;
  /** rows per micro-batch over all ranks: batch_size × ranks */
  readonly globalBatch: number;
  /** this rank's rows within the global micro-batch being trained: rows [offset, offset + batch_size) of `size` */
  readonly microBatch: { offset: number; size: number };
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
  /** mixed precision's loss scale (disabled in f32) */
  readonly scaler: GradScaler;
  /** the weights this stage started from (--init, as an absolute path), kept across resumes: DPO/GRPO's reference */
  readonly stageInit: string | null;
  /** size and CRC-32 of stageInit's model.safetensors, so a resume can tell it is still the same weights */
  readonly initModel: FileSum | null;
  /** CRC-32 of the data's manifest.json (which lists every shard's sum): the dataset's identity */
  private readonly manifestCrc: string;
  /** true while steps run: waits on user code then end at once on a signal (not in on_train_end) */
  inLoop = false;

  constructor(p: TrainerParts) {
    const { resumed: _, ...parts } = p;
    Object.assign(this, parts);
    this.dp = p.dp ?? null;
    this.seqLen = p.data.manifest.seq_len;
    const ranks = this.dp?.size ?? 1;
    this.globalBatch = p.cfg.batch_size * ranks;
    this.microBatch = { offset: (this.dp?.rank ?? 0) * p.cfg.batch_size, size: this.globalBatch };
    const perEpoch = Math.floor(this.sampler.batchesPerEpoch(this.globalBatch) / p.cfg.accumulation_steps);
    const across = ranks > 1 ? ` (× ${ranks} ranks = ${this.globalBatch} rows)` : "";
    if (this.globalBatch > p.data.rows)
      throw new InputError(
        `--batch-size ${p.cfg.batch_size}${across}: ${p.cfg.data} has only ${p.data.rows} training rows; lower --batch-size`,
      );
    if (perEpoch < 1 && p.cfg.max_steps === undefined)
      throw new InputError(
        `${p.data.rows} rows make no full step of ${p.cfg.batch_size}×${p.cfg.accumulation_steps}${across}; lower --batch-size or --accumulation-steps`,
      );
    this.totalSteps = p.cfg.max_steps ?? p.cfg.n_epoch * perEpoch;
    // a resumed run that has nothing left to do would end at once and say nothing
    if (p.resumed && this.totalSteps <= p.resumed.step)
      throw new InputError(
        `--max-steps ${this.totalSteps}: ${p.cfg.resume} is at step ${p.resumed.step} already; give more steps to continue`,
      );
    this.rng = new Rng(p.cfg.seed + 17);
    this.stageInit = p.cfg.init ? resolve(p.cfg.init) : (p.resumed?.init ?? null);
    this.initModel = p.cfg.init ? initSum(this.stageInit!) : (p.resumed?.init_model ?? null);
    this.manifestCrc = fileSum(join(p.cfg.data, "manifest.json")).crc32;
    // auto: mixed where the adapter has tensor cores (subgroup matrices); elsewhere f16 inputs would
    // only cost accuracy
    this.precision =
      // mixed only where tensor cores really run it: an adapter with configs but no usable one
      // would run mixed precision on the slower f16-rounding tiled kernels
      p.cfg.precision === "auto" ? (subgroupMatrixPath() === "native" ? "mixed" : "f32") : p.cfg.precision;
    // a run that switches to mixed precision on resume starts from the configured scale
    this.scaler = new GradScaler(
      this.precision === "mixed",
      p.cfg.loss_scale,
      p.cfg.loss_scale_window,
      p.resumed?.precision === "mixed" ? p.resumed : undefined,
    );
    if (p.resumed) {
      this.step = p.resumed.step;
      this.consumed = p.resumed.consumed_samples;
      this.rng = Rng.fromState(p.resumed.rng);
      this.history = p.resumed.metrics ?? [];
      this.lastCheckpointStep = this.step;
      this.lastCheckpoint = p.cfg.resume ?? null;
    }
    this.startStep = this.step;
  }

  get epoch(): number {
    return this.sampler.epoch;
  }

  /** Whether this process reports and writes: the only one, or rank 0 of a data-parallel run. */
  get rank0(): boolean {
    return (this.dp?.rank ?? 0) === 0;
  }

  emit(o: Record<string, unknown>): void {
    if (!this.rank0) return;
    const line = JSON.stringify(o);
    this.onEvent?.(line);
    this.metrics.write(line);
  }

  private async fire(hook: Hook, ...args: any[]): Promise<void> {
    for (const cb of this.callbacks) {
      const f = cb[hook] as ((...a: any[]) => unknown) | undefined;
      if (f) await f.call(cb, this, ...args);
    }
  }

  schedule(): ScheduleConfig {
    const c = this.cfg;
    return {
      name: c.schedule,
      maxLr: c.max_lr,
      minRate: c.min_rate,
      warmup: c.warmup_steps,
      totalSteps: this.totalSteps,
      cycle: c.sgdr_cycle,
      tMult: c.t_mult,
      decayFraction: c.wsd_decay_fraction,
    };
  }

  /**
   * The next micro-batch's rows for this rank: the sampler draws the global micro-batch as one process
   * would, and each rank takes its slice. Crosses into the next epoch when this one is used up.
   */
  private nextIndices(): Uint32Array {
    const G = this.globalBatch;
    let idx = this.sampler.next(G);
    if (!idx) {
      this.sampler.nextEpoch();
      idx = this.sampler.next(G);
      if (!idx) throw new Error(`the dataset has ${this.data.rows} rows, fewer than one batch of ${G}`);
    }
    return this.dp ? this.dp.deal(idx) : idx;
  }

  async run(): Promise<void> {
    const g = gpu();
    this.emit({
      event: "start",
      strategy: this.strategy.name,
      precision: this.precision,
      ...(this.precision === "mixed" ? { loss_scale: this.scaler.scale, subgroup_matrix: subgroupMatrixPath() } : {}),
      provider: g.provider,
      adapter: g.info.description || g.info.device,
      step: this.step,
      total_steps: this.totalSteps,
      ...(this.dp ? { world_size: this.dp.size, global_batch_size: this.globalBatch } : {}),
    });
    try {
      await withMatmulPrecision(this.precision === "mixed" ? "f16" : "f32", () =>
        withRecompute(this.cfg.recompute, () => this.loop()),
      );
    } catch (e) {
      if (!(e instanceof TrainingStopped)) await this.saveAfterError(e);
      throw e;
    } finally {
      this.inLoop = false;
    }
  }

  /** Backward from a strategy's loss, seeded with the loss scale (mixed precision). */
  backward(loss: Tensor, dloss?: Tensor): void {
    backward(loss, dloss, this.scaler.scale);
  }

  /** After an error: keep the steps finished since the last checkpoint (once), and say where. */
  private async saveAfterError(e: unknown): Promise<void> {
    // in a data-parallel run the error may be this rank's alone: rank 0 saves without asking the others
    if (!this.rank0 || this.step <= this.startStep || this.step <= this.lastCheckpointStep) return;
    try {
      const dir = await this.saveGood("error");
      if (dir && e instanceof Error) e.message += ` (step ${this.step} was saved in ${dir}; --resume it once fixed)`;
    } catch {
      // the error that ended the run is the one to report
    }
  }

  /** Take back a step that did not finish: no gradients, and the data and randomness it drew. */
  private undoStep(before: { sampler: SamplerState; rng: number[] }): void {
    zeroGrad(this.optimizer.params);
    this.sampler.restore(before.sampler);
    this.rng = Rng.fromState(before.rng);
  }

  /**
   * The strategy's set-up (GRPO: its reward, side records and reference): run by the command before
   * it replaces anything in --out, so a bad reward or side file changes nothing.
   */
  async prepare(): Promise<void> {
    await this.strategy.init?.(this);
  }

  private async loop(): Promise<void> {
    await this.fire("on_train_begin");
    let epochSeen = -1;
    this.inLoop = true;
    while (this.step < this.totalSteps) {
      if (this.sampler.epoch !== epochSeen) {
        if (epochSeen >= 0) await this.fire("on_epoch_end");
        epochSeen = this.sampler.epoch;
        await this.fire("on_epoch_begin");
      }
      const before = { sampler: this.sampler.state(), rng: this.rng.state() };
      let m: Record<string, number>;
      try {
        m = await this.step_();
      } catch (e) {
        this.undoStep(before);
        if (e instanceof StopRequested) {
          this.stopReason = e.signal;
          break;
        }
        throw e;
      }
      this.history.push({ step: this.step, loss: m.loss! });
      try {
        await this.strategy.onStepEnd?.(this);
        await this.fire("on_step_end", m);
        if (
          this.val &&
          this.cfg.eval_interval > 0 &&
          (this.step % this.cfg.eval_interval === 0 || this.step === this.totalSteps)
        )
          await this.evaluate();
      } catch (e) {
        // the step itself is done and counted; a stop during its callbacks ends the run after it
        if (!(e instanceof StopRequested)) throw e;
        this.stopRequested ??= e.signal;
      }
      // the ranks stop together: a signal any of them has seen by now stops them all after this step
      if (this.dp) this.stopRequested = this.dp.agreeStop(this.stopRequested);
      if (this.stopRequested) {
        this.stopReason = this.stopRequested;
        break;
      }
      if (this.dp && this.step % CHECK_EVERY === 0) await this.checkReplicas();
    }
    this.inLoop = false;
    await this.fire("on_epoch_end");
    await this.fire("on_train_end");
  }

  /**
   * One optimizer step: A micro-batches, one readback, the update (unless the loss scale overflowed
   * f16: then the step counts, skipped). Returns the step's metrics. Throws before the update is
   * applied, never after.
   */
  private async step_(): Promise<Record<string, number>> {
    await this.fire("on_step_begin");
    const t0 = performance.now();
    const A = this.cfg.accumulation_steps;
    const batches = Array.from({ length: A }, () => this.nextIndices());
    const rows = batches.map((idx) => this.data.batch(idx, this.strategy.keys));
    let windowCount = rows.reduce((n, r, i) => n + this.strategy.count(r, batches[i]!.length), 0);
    // the normalizer of the global batch: trained tokens (or pairs, responses) over every rank's rows
    if (this.dp) windowCount = this.dp.sum([windowCount])[0]!;
    const { loss, norm, metrics, tokens, comm } = await scopeAsync(async () => {
      const losses: number[] = [],
        lossTensors = [];
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
      if (this.dp) return this.reduceStep(losses, lossTensors, metrics, tokens);
      this.optimizer.computeNorm(this.scaler.scale);
      const got = await readBuffers([
        ...lossTensors.map((t) => ({ buffer: t.buffer, bytes: 4 })),
        { buffer: this.optimizer.norm.stats.buffer, bytes: 8 },
      ]);
      for (let i = 0; i < lossTensors.length; i++) losses.push(new Float32Array(got[i]!)[0]!);
      const norm = new Float32Array(got[got.length - 1]!)[0]!;
      return { loss: losses.reduce((a, x) => a + x, 0), norm, metrics, tokens, comm: null };
    });
    // a non-finite loss (or, in f32, gradient norm) is the run diverging; a non-finite norm under a
    // loss scale is f16 overflowing, which the scaler handles by skipping the step
    if (!Number.isFinite(loss) || (!this.scaler.enabled && !Number.isFinite(norm)))
      await this.stopOnNonFinite(loss, norm);
    const scaleUsed = this.scaler.scale;
    const skip = this.scaler.update(Number.isFinite(norm)) === "skip";
    const lr = skip ? 0 : lrAt(this.step + 1, this.schedule());
    if (!skip) this.optimizer.update(lr);
    zeroGrad(this.optimizer.params);
    this.step++;
    this.consumed += A * this.globalBatch;
    const step = { step: this.step, epoch: this.sampler.epoch, loss, learning_rate: lr, grad_norm: norm, tokens };
    if (skip) {
      this.emit({ event: "skip", step: this.step, loss, loss_scale: this.scaler.scale });
      return { ...step, tokens_per_s: 0, skipped: 1, loss_scale: this.scaler.scale };
    }
    const seconds = (performance.now() - t0) / 1000;
    const m: Record<string, number> = { ...step, tokens_per_s: tokens / seconds, ...metrics };
    if (this.scaler.enabled) m.loss_scale = scaleUsed;
    // this rank's seconds blocked in the gradient all-reduce (includes waiting for slower ranks)
    if (comm) m.allreduce_s = comm.seconds;
    return m;
  }

  /**
   * The end of a data-parallel step's micro-batches: gradients summed over the ranks (bucket by
   * bucket, the loss tensors read with the first), then the losses, metrics and tokens summed the
   * same way, then the gradient norm of the summed gradients.
   */
  private async reduceStep(
    losses: number[],
    lossTensors: Tensor[],
    metrics: Record<string, number>,
    tokens: number,
  ): Promise<{
    loss: number;
    norm: number;
    metrics: Record<string, number>;
    tokens: number;
    comm: { seconds: number; bytes: number };
  }> {
    const dp = this.dp!;
    const grads = this.optimizer.params.map((p) => {
      if (!p.grad) throw new Error("a parameter has no gradient after backward");
      return p.grad;
    });
    const r = await dp.reduceGrads(
      grads,
      lossTensors.map((t) => t.buffer),
    );
    const keys = Object.keys(metrics).sort();
    const local = [...losses, ...r.extra].reduce((a, x) => a + x, 0);
    const [loss, tok, ...vals] = dp.sum([local, tokens, ...keys.map((k) => metrics[k]!)]);
    const summed: Record<string, number> = {};
    keys.forEach((k, i) => (summed[k] = vals[i]!));
    this.optimizer.computeNorm(this.scaler.scale);
    const [stats] = await readBuffers([{ buffer: this.optimizer.norm.stats.buffer, bytes: 8 }]);
    return { loss: loss!, norm: new Float32Array(stats!)[0]!, metrics: summed, tokens: tok!, comm: r };
  }

  /**
   * Every rank must hold the same weights (the same summed gradients, the same update): compare a
   * hash of each weight across the ranks and stop them all, with the weights named, when they differ.
   */
  async checkReplicas(): Promise<void> {
    if (!this.dp) return;
    const bad = await this.dp.divergent(this.lora ? this.lora.adapters.named : namedParams(this.params));
    if (!bad.length) return;
    this.stopReason = "diverged";
    const last = this.lastCheckpoint ? `; the last checkpoint, taken while they agreed, is ${this.lastCheckpoint}` : "";
    throw new TrainingStopped(
      `the ranks' weights differ after step ${this.step} (${bad.slice(0, 3).join(", ")}${bad.length > 3 ? `, and ${bad.length - 3} more` : ""}): a rank computed something the others did not (another adapter or driver, a callback that changed weights on one rank)${last}`,
    );
  }

  /**
   * The step's loss or gradient norm is not finite; its update was not applied, so the weights are
   * those after the previous step. Save them if they are finite and not saved yet, then stop.
   */
  private async stopOnNonFinite(loss: number, norm: number): Promise<never> {
    zeroGrad(this.optimizer.params);
    this.stopReason = "nan";
    const what = `loss is ${loss}, gradient norm ${norm} at step ${this.step + 1}`;
    const fix = "lower --max-lr, add --warmup-steps, check the data";
    if (this.lastCheckpointStep === this.step && this.lastCheckpoint)
      throw new TrainingStopped(`${what}; the last good state is ${this.lastCheckpoint} (${fix})`);
    if (this.step === 0) throw new TrainingStopped(`${what}, the first step: nothing to save (${fix})`);
    const dir = await this.saveGood("nan");
    if (dir) throw new TrainingStopped(`${what}; saved the last good state (step ${this.step}) in ${dir} (${fix})`);
    throw new TrainingStopped(
      `${what}, and the weights after step ${this.step} are not finite either, so nothing was saved; ${this.lastGoodText()} (${fix})`,
    );
  }

  private lastGoodText(): string {
    const good = listCheckpoints(this.cfg.out).at(-1);
    return good
      ? `the last good checkpoint is ${this.cfg.out}/${good.name}`
      : "no checkpoint of this run holds good weights";
  }

  /** checkpoint(), or null when the state is not finite (nothing is written then). */
  private async saveGood(reason: string): Promise<string | null> {
    try {
      return await this.checkpoint(reason);
    } catch (e) {
      if (e instanceof NonFiniteState) return null;
      throw e;
    }
  }

  /** Mean validation loss over the whole val split (no gradients); emits an "eval" event. */
  async evaluate(): Promise<number | null> {
    if (!this.val || !this.strategy.evalBatch) return null;
    const B = this.cfg.batch_size;
    let total = 0,
      count = 0;
    // the val split's batches are dealt round-robin over the ranks, and the sums added up
    const ranks = this.dp?.size ?? 1,
      rank = this.dp?.rank ?? 0;
    for (let s = rank * B; s < this.val.rows; s += B * ranks) {
      const idx = Uint32Array.from({ length: Math.min(B, this.val.rows - s) }, (_, i) => s + i);
      const r = await scopeAsync(() =>
        this.strategy.evalBatch!(this, this.val!.batch(idx, this.strategy.keys), idx.length),
      );
      total += r.loss;
      count += r.count;
    }
    if (this.dp) [total, count] = this.dp.sum([total, count]) as [number, number];
    const loss = count ? total / count : NaN;
    this.emit({ event: "eval", step: this.step, val_loss: loss, val_tokens: count });
    return loss;
  }

  /**
   * Save the state as RUN_DIR/step_NNNNNN. In a data-parallel run every rank calls it at the same
   * step (the replicas are compared first) and rank 0 alone writes; the ranks then agree on how it
   * went, so all of them go on or stop together. After an error ("error"), which may be one rank's
   * alone, rank 0 writes without asking the others.
   */
  async checkpoint(reason: string): Promise<string> {
    const collective = this.dp !== null && reason !== "error";
    if (collective) await this.checkReplicas();
    let dir = join(this.cfg.out, stepDirName(this.step));
    let failure: unknown = null;
    if (this.rank0)
      try {
        dir = await this.write(reason);
      } catch (e) {
        failure = e;
      }
    if (collective) {
      const code = this.dp!.agree(failure === null ? 0 : failure instanceof NonFiniteState ? 1 : 2);
      if (code && failure === null)
        failure =
          code === 1
            ? new NonFiniteState(`rank 0 found a NaN/Inf weight or moment`)
            : new TrainingStopped(`rank 0 could not write the checkpoint of step ${this.step} (its error says why)`);
    }
    if (failure !== null) {
      const e = failure;
      if (!(e instanceof NonFiniteState) || reason === "nan" || reason === "error") throw e;
      this.stopReason = "nan";
      throw new TrainingStopped(
        `${e.message} after step ${this.step}, so it was not saved; ${this.lastGoodText()} (lower --max-lr, add --warmup-steps, check the data)`,
      );
    }
    this.lastCheckpointStep = this.step;
    this.lastCheckpoint = dir;
    this.emit({ event: "checkpoint", step: this.step, path: dir, reason });
    return dir;
  }

  private async write(reason: string): Promise<string> {
    const meta: Omit<Meta, "files"> = {
      format: "bunlm-checkpoint",
      strategy: this.strategy.name,
      step: this.step,
      epoch: this.sampler.epoch,
      consumed_samples: this.consumed,
      sampler: this.sampler.state(),
      rng: this.rng.state(),
      config: absolutePaths(this.cfg),
      data: {
        dir: resolve(this.cfg.data),
        tokenizer_hash: this.data.manifest.tokenizer.hash,
        type: this.data.manifest.type,
        manifest_crc32: this.manifestCrc,
      },
      init: this.stageInit,
      ...(this.initModel ? { init_model: this.initModel } : {}),
      metrics: this.history,
      reason,
      precision: this.precision,
      ...this.scaler.state(),
      // what a resume on another number of ranks keeps: the rows per micro-batch over all ranks
      global_batch_size: this.globalBatch,
      world_size: this.dp?.size ?? 1,
    };
    return saveCheckpoint(this.cfg.out, {
      config: this.model,
      params: this.params,
      optimizer: this.optimizer,
      meta,
      tokenizerDir: this.tokenizerDir,
      keep: this.cfg.keep,
      dtype: saveDtype(this.cfg.save_dtype, this.model),
      lora: this.lora ?? undefined,
    });
  }
}

/** The config as meta.json keeps it: paths absolute, so a resume from another directory finds the same files. */
function absolutePaths(c: TrainConfig): Record<string, unknown> {
  const abs = (p: string | undefined) => (p === undefined ? undefined : resolve(p));
  return {
    ...c,
    data: abs(c.data),
    init: abs(c.init),
    model: abs(c.model),
    reward: abs(c.reward),
    callback: c.callback.map((p) => resolve(p)),
  };
}

/** model.safetensors' sum, from the checkpoint's meta.json when it has one (no second read), else computed; null for sharded weights. */
function initSum(dir: string): FileSum | null {
  const recorded = recordedSums(dir)["model.safetensors"];
  if (recorded) return recorded;
  const file = join(dir, "model.safetensors");
  return existsSync(file) ? fileSum(file) : null;
}

/** --save-dtype as a safetensors dtype: auto keeps what the weights were loaded from. */
function saveDtype(choice: string, model: ModelConfig): WeightDtype {
  if (choice === "bfloat16") return "BF16";
  if (choice === "float16") return "F16";
  if (choice === "float32") return "F32";
  return model.stored_dtype ?? "F32";
}
