// What the four training commands share: their flags (one per config key the command uses, derived
// from the schema, so a key can never be missing as a flag), the config they resolve (--config JSON,
// then flags on top; on --resume the checkpoint's config, then flags on top), and the run itself:
// the run directory's policy and lock, events to stdout, and signals. SIGINT/SIGTERM end the
// current step (a wait on a reward or a callback ends at once), save a checkpoint and exit 130/143;
// a second signal exits at once.
import type { ArgsDef } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { num } from "../lib/io/validate.ts";
import { keysFor, TrainConfigSchema, type Strategy } from "../lib/train/config.ts";
import { type KeyInfo, schemaKeys } from "../lib/base/schema_info.ts";
import { clearStatus, log } from "../lib/base/log.ts";
import { givenFlags } from "./_cli.ts";
import { resolveConfig } from "../lib/train/resolve_config.ts";
import { TrainContextBuilder } from "../lib/train/context.ts";
import { RunDir } from "../lib/train/run_dir.ts";
import type { Trainer } from "../lib/train/trainer.ts";
import { StopRequested } from "../lib/train/deadline.ts";

const KEYS = new Map(schemaKeys(TrainConfigSchema));
const flagOf = (k: string) => k.replace(/_/g, "-");
const HINT: Record<KeyInfo["kind"], string> = {
  text: "PATH",
  number: "X",
  integer: "N",
  choice: "",
  list: "PATH",
  other: "VALUE",
};

/** The command-line flags of a training command: one per config key it uses, plus --config and --overwrite. */
export function trainArgs(strategy: Strategy): ArgsDef {
  const args: ArgsDef = {
    config: { type: "string", valueHint: "FILE", description: "training config JSON (flags override it)" },
    overwrite: { type: "boolean", default: false, description: "replace an earlier run of this command in --out" },
  };
  for (const k of keysFor(strategy)) {
    const info = KEYS.get(k)!;
    const d = info.default;
    args[flagOf(k)] = {
      type: "string",
      description: info.description,
      valueHint: info.kind === "choice" ? info.choices!.join("|") : HINT[info.kind],
      // shown by --help; the value in effect comes from the flags actually given (see flagsOf)
      default: d === undefined || (Array.isArray(d) && d.length === 0) ? undefined : String(d),
    };
  }
  return args;
}

/**
 * The flags given on the command line, as config keys. Read from rawArgs rather than citty's parse:
 * citty fills in every default, and a default must not override a --config file's value.
 */
function flagsOf(rawArgs: string[], strategy: Strategy): Record<string, unknown> {
  const given = givenFlags(trainArgs(strategy), rawArgs);
  const out: Record<string, unknown> = {};
  for (const k of keysFor(strategy)) {
    const values = given.get(flagOf(k));
    if (values === undefined) continue;
    const kind = KEYS.get(k)!.kind;
    out[k] = kind === "list" ? values : kind === "number" || kind === "integer" ? num(values.at(-1)) : values.at(-1);
  }
  return out;
}

const EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function runTraining(strategy: Strategy, rawArgs: string[]): Promise<void> {
  const own = givenFlags({ config: { type: "string" }, overwrite: { type: "boolean" } }, rawArgs);
  const cfg = resolveConfig(strategy, flagsOf(rawArgs, strategy), own.get("config")?.at(-1));
  const overwrite = own.get("overwrite")?.at(-1) === "true";
  const note = (line: string) => log.info(line.replace(/^bunlm: (note: )?/, ""));
  let trainer: Trainer | null = null;
  const onSignal = (sig: string) => () => {
    // before the run starts, or a second signal: stop now (exit handlers release the lock and kill
    // reward processes)
    if (!trainer || trainer.stopRequested) {
      log.warn(`${sig}: stopping now, without saving`);
      process.exit(EXIT[sig]);
    }
    trainer.stopRequested = sig;
    trainer.stop.abort(sig);
    log.warn(
      `${sig}: stopping after step ${trainer.step + 1} (or at once where it waits on a reward or a callback), then saving a checkpoint; send again to stop without saving`,
    );
  };
  const sigint = onSignal("SIGINT"),
    sigterm = onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  const run = RunDir.open(cfg, strategy, overwrite, note);
  try {
    await initGpu();
    trainer = await new TrainContextBuilder(strategy, cfg, (line) => {
      clearStatus();
      console.log(line);
    }).build();
    try {
      await trainer.prepare();
    } catch (e) {
      // a signal while a reward module loads: nothing has run, nothing to save
      if (e instanceof StopRequested) process.exit(EXIT[e.signal] ?? 1);
      throw e;
    }
    run.begin(cfg.resume ? trainer.startStep : null);
    const t0 = performance.now();
    try {
      await trainer.run();
    } finally {
      await trainer.strategy.dispose?.();
    }
    const last = trainer.history[trainer.history.length - 1];
    trainer.emit({
      event: "summary",
      strategy,
      steps: trainer.step,
      epoch: trainer.epoch,
      consumed_samples: trainer.consumed,
      final_loss: last?.loss ?? null,
      seconds: +((performance.now() - t0) / 1000).toFixed(3),
      checkpoint: trainer.lastCheckpoint,
      stopped: trainer.stopReason,
    });
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    run.close();
  }
  if (trainer.stopRequested) process.exit(EXIT[trainer.stopRequested]);
}
