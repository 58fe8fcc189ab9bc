// What the four training commands share: their flags (one per config key the command uses, derived
// from the schema, so a key can never be missing as a flag), the config they resolve (--config JSON,
// then flags on top; on --resume the checkpoint's config, then flags on top), and the run itself:
// the run directory's policy and lock, events to stdout, and signals. SIGINT/SIGTERM end the
// current step (a wait on a reward or a callback ends at once), save a checkpoint and exit 130/143;
// a second signal exits at once.
// Under mpirun/mpiexec (--dist auto) every rank runs this: rank 0 alone takes --out's lock and prints;
// the ranks agree that all of them started, stop together after the step in which any saw a signal
// (a wait is not cut short: the others would wait for this rank in the next collective), and end
// together, rank 0 saying why. An error that only one rank may have met aborts the whole job.
import type { ArgsDef } from "citty";
import { LogLevels } from "consola";
import { initGpu } from "../lib/gpu/index.ts";
import { useLocalRank } from "../lib/gpu/device.ts";
import { initComm, type Comm } from "../lib/dist/index.ts";
import { InputError } from "../lib/base/errors.ts";
import { num } from "../lib/io/validate.ts";
import { keysFor, TrainConfigSchema, type Strategy } from "../lib/train/config.ts";
import { type KeyInfo, schemaKeys } from "../lib/base/schema_info.ts";
import { clearStatus, log } from "../lib/base/log.ts";
import { failLine, givenFlags } from "./_cli.ts";
import { distMode, resolveConfig } from "../lib/train/resolve_config.ts";
import { DataParallel } from "../lib/train/dist.ts";
import { TrainContextBuilder } from "../lib/train/context.ts";
import { RunDir } from "../lib/train/run_dir.ts";
import { TrainingStopped, type Trainer } from "../lib/train/trainer.ts";
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
    if (typeof d === "boolean") {
      // a switch (--recompute, --no-recompute), not a valued flag
      args[flagOf(k)] = { type: "boolean", description: info.description, default: d };
      continue;
    }
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
    out[k] =
      typeof KEYS.get(k)!.default === "boolean"
        ? values.at(-1) === "true"
        : kind === "list"
          ? values
          : kind === "number" || kind === "integer"
            ? num(values.at(-1))
            : values.at(-1);
  }
  return out;
}

const EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function runTraining(strategy: Strategy, rawArgs: string[]): Promise<void> {
  const own = givenFlags({ config: { type: "string" }, overwrite: { type: "boolean" } }, rawArgs);
  const flags = flagsOf(rawArgs, strategy);
  const configFile = own.get("config")?.at(-1);
  const overwrite = own.get("overwrite")?.at(-1) === "true";
  // the ranks first: a resume splits its global batch among them
  const comm = initComm(distMode(flags, configFile));
  const dp = comm ? new DataParallel(comm) : null;
  const rank0 = !comm || comm.rank === 0;
  // the other ranks say only what goes wrong
  if (!rank0) log.level = LogLevels.error;
  const note = (line: string) => log.info(line.replace(/^bunlm: (note: )?/, ""));
  let trainer: Trainer | null = null;
  let run: RunDir | null = null;
  // the signal this process received (under MPI, a stop can also come from another rank: that one
  // is not a first signal here, and this rank's own Ctrl-C still asks for the save)
  let signalled = false;
  const onSignal = (sig: string) => () => {
    // before the run starts, or a second signal: stop now (exit handlers release the lock and kill
    // reward processes)
    if (!trainer || signalled) {
      log.warn(`${sig}: stopping now, without saving`);
      process.exit(EXIT[sig]);
    }
    signalled = true;
    trainer.stopRequested ??= sig;
    if (!dp) trainer.stop.abort(sig);
    log.warn(
      dp
        ? `${sig}: every rank stops after step ${trainer.step + 1}, then rank 0 saves a checkpoint; send again to stop without saving`
        : `${sig}: stopping after step ${trainer.step + 1} (or at once where it waits on a reward or a callback), then saving a checkpoint; send again to stop without saving`,
    );
  };
  const sigint = onSignal("SIGINT"),
    sigterm = onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  try {
    let failed: unknown = null;
    try {
      const cfg = resolveConfig(strategy, flags, configFile, comm?.size ?? 1);
      if (rank0) run = RunDir.open(cfg, strategy, overwrite, note);
      if (comm) useLocalRank(comm.localRank);
      await initGpu();
      trainer = await new TrainContextBuilder(
        strategy,
        cfg,
        (line) => {
          clearStatus();
          console.log(line);
        },
        dp,
      ).build();
      try {
        await trainer.prepare();
      } catch (e) {
        // a signal while a reward module loads: nothing has run, nothing to save
        if (e instanceof StopRequested) process.exit(EXIT[e.signal] ?? 1);
        throw e;
      }
    } catch (e) {
      if (!comm) throw e;
      failed = e;
    }
    if (comm) startTogether(comm, failed, () => run?.close());
    run?.begin(trainer!.cfg.resume ? trainer!.startStep : null);
    const t0 = performance.now();
    try {
      await trainer!.run();
    } catch (e) {
      if (comm) endTogether(comm, e, () => run?.close());
      throw e;
    } finally {
      await trainer!.strategy.dispose?.();
    }
    const t = trainer!;
    const last = t.history[t.history.length - 1];
    t.emit({
      event: "summary",
      strategy,
      steps: t.step,
      epoch: t.epoch,
      consumed_samples: t.consumed,
      final_loss: last?.loss ?? null,
      seconds: +((performance.now() - t0) / 1000).toFixed(3),
      checkpoint: t.lastCheckpoint,
      stopped: t.stopReason,
    });
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    run?.close();
  }
  // the ranks leave together: none ends the job while rank 0 still writes
  comm?.barrier();
  if (trainer!.stopRequested) process.exit(EXIT[trainer!.stopRequested]);
}

/**
 * Every rank has built its run, or none goes on: a rank that failed says why (rank 0 first, as the
 * others probably failed the same way), and every rank exits 1.
 */
function startTogether(comm: Comm, failed: unknown, close: () => void): void {
  const x = Int32Array.of(failed ? 1 : 0, failed && comm.rank === 0 ? 1 : 0);
  comm.allreduceMax(x);
  if (!x[0]) return;
  close();
  const own = failed ? failLine(failed) : null;
  // rank 0's reason, or that of the ranks that failed when rank 0 did not
  if (own && (comm.rank === 0 || !x[1])) process.stderr.write(`${ofRank(comm, own)}\n`);
  else if (comm.rank === 0) log.error(new InputError("another rank could not start; its error is above"));
  comm.barrier();
  process.exit(1);
}

/**
 * The run ended in an error. A stop the ranks agreed on (a NaN loss, replicas that differ, a failed
 * checkpoint) ends them together, rank 0 saying why. Any other error may be this rank's alone, while
 * the others wait for it in a collective: it ends the whole job (rank 0 has saved what it could).
 */
function endTogether(comm: Comm, e: unknown, close: () => void): never {
  close();
  if (e instanceof TrainingStopped) {
    if (comm.rank === 0) process.stderr.write(`${failLine(e)}\n`);
    comm.barrier();
    process.exit(1);
  }
  process.stderr.write(`${ofRank(comm, failLine(e))}\n`);
  comm.abort(1);
}

/** "bunlm: error: …" as "bunlm: rank 1: error: …" on ranks other than 0. */
const ofRank = (comm: Comm, line: string) =>
  comm.rank === 0 ? line : line.replace(/^bunlm: /, `bunlm: rank ${comm.rank}: `);
