// The training loop's hooks (the seed framework's callback points) and the default callbacks:
// progress on stderr (TTY only), metrics as JSONL on stdout and in RUN_DIR/metrics.jsonl,
// checkpoints every K steps and at the end. Users add their own with --callback path.ts (a module
// whose default export is a Callback object or a class of one; user_callback.ts loads it).
import { appendFileSync } from "node:fs";
import { InputError } from "../base/errors.ts";
import { clearStatus, setStatus } from "../base/log.ts";
import type { Trainer } from "./trainer.ts";

export interface Callback {
  on_train_begin?(t: Trainer): void | Promise<void>;
  on_epoch_begin?(t: Trainer): void | Promise<void>;
  on_step_begin?(t: Trainer): void | Promise<void>;
  on_batch_begin?(t: Trainer, batch: number): void | Promise<void>;
  on_batch_end?(t: Trainer, batch: number): void | Promise<void>;
  on_step_end?(t: Trainer, metrics: Record<string, number>): void | Promise<void>;
  on_epoch_end?(t: Trainer): void | Promise<void>;
  on_train_end?(t: Trainer): void | Promise<void>;
}

export type Hook = keyof Callback;

/**
 * RUN_DIR/metrics.jsonl gets every event and optimizer step; stdout every log_interval-th step (and the
 * last). file null: a data-parallel rank other than 0, which writes nothing.
 */
export class MetricsCallback implements Callback {
  constructor(private readonly file: string | null) {}
  on_step_end(t: Trainer, m: Record<string, number>) {
    const line = { event: "step", ...m };
    if (t.step % t.cfg.log_interval === 0 || t.step === t.totalSteps) t.emit(line);
    else this.write(JSON.stringify(line));
  }
  write(line: string) {
    if (this.file === null) return;
    try {
      appendFileSync(this.file, line + "\n");
    } catch (e: any) {
      if (e?.code === "ENOSPC") throw new InputError(`${this.file}: no space left on the device`);
      throw e;
    }
  }
}

/** A progress line on stderr: step, loss, lr, tokens/s, ETA (only on a TTY, and not with --quiet). */
export class ProgressCallback implements Callback {
  private t0 = 0;
  on_train_begin() {
    this.t0 = performance.now();
  }
  on_step_end(t: Trainer, m: Record<string, number>) {
    const el = (performance.now() - this.t0) / 1000;
    const done = t.step - t.startStep;
    const eta = done > 0 ? ((t.totalSteps - t.step) * el) / done : 0;
    setStatus(
      `${t.strategy.name} step ${t.step}/${t.totalSteps} loss ${m.loss?.toFixed(4)} lr ${m.learning_rate?.toExponential(2)} ${Math.round(m.tokens_per_s ?? 0)} tok/s ETA ${Math.round(eta)}s`,
    );
  }
  on_train_end() {
    clearStatus();
  }
}

/** Checkpoints every ckpt_interval steps and at the end of training. */
export class CheckpointCallback implements Callback {
  async on_step_end(t: Trainer) {
    if (t.cfg.ckpt_interval > 0 && t.step % t.cfg.ckpt_interval === 0 && t.step !== t.totalSteps)
      await t.checkpoint("interval");
  }
  async on_train_end(t: Trainer) {
    if (t.lastCheckpointStep !== t.step) await t.checkpoint(t.stopReason ?? "end");
  }
}
