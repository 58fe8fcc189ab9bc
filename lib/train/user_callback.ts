// A user's --callback module (its default export, or `callback`: a Callback object, or a class of
// one), wrapped so that its hooks are user code like a reward: each call waits at most
// callback_timeout seconds and gives way at once to the trainer's stop signal, and a throw names the
// file and line, `--callback ./cb.ts:7: on_step_end threw: ...`. Every hook receives the Trainer
// first, so the wrapper reads the limit (t.cfg.callback_timeout) and the signal (t.stop) from the
// call itself: the module can be loaded before the Trainer exists.
import { InputError } from "../base/errors.ts";
import { importUserModule, lineIn, thrownMessage, where, withDeadline } from "./deadline.ts";
import type { Callback, Hook } from "./callbacks.ts";
import type { Trainer } from "./trainer.ts";

// every hook the Trainer fires, checked against Callback's keys by the compiler
const HOOKS: { [K in Hook]: true } = {
  on_train_begin: true,
  on_epoch_begin: true,
  on_step_begin: true,
  on_batch_begin: true,
  on_batch_end: true,
  on_step_end: true,
  on_epoch_end: true,
  on_train_end: true,
};
const HOOK_NAMES = Object.keys(HOOKS) as Hook[];

/** timeoutMs: how long loading the module (its top level) may take, --callback-timeout. */
export async function loadUserCallback(path: string, timeoutMs = 60_000): Promise<Callback> {
  const { mod, file } = await importUserModule("--callback", path, { ms: timeoutMs, flag: "--callback-timeout" });
  const x = mod.default ?? mod.callback;
  if (x === null || (typeof x !== "object" && typeof x !== "function"))
    throw new InputError(
      `--callback ${path}: export a Callback as default (an object with on_step_end and friends, or a class of one)`,
    );
  let cb: any;
  try {
    cb = typeof x === "function" ? new (x as new () => unknown)() : x;
  } catch (e) {
    throw new InputError(`${where("--callback", path, lineIn(e, file))}: constructor threw: ${thrownMessage(e)}`);
  }
  const wrapped: Callback = {};
  for (const hook of HOOK_NAMES) {
    const f = cb[hook];
    if (f === undefined) continue;
    if (typeof f !== "function") throw new InputError(`--callback ${path}: ${hook} is ${typeof f}, not a function`);
    wrapped[hook] = (t: Trainer, ...args: unknown[]) => {
      const work = (async () => f.call(cb, t, ...args))().catch((e) => {
        throw new InputError(`${where("--callback", path, lineIn(e, file))}: ${hook} threw: ${thrownMessage(e)}`);
      });
      return withDeadline(work, {
        ms: (t.cfg.callback_timeout ?? 60) * 1000,
        what: `--callback ${path}: ${hook}`,
        flag: "--callback-timeout",
        signal: _interruptible(t),
      }) as Promise<void>;
    };
  }
  // a module with none of the hooks (onStepEnd, a typo) would otherwise be silently ignored
  if (Object.keys(wrapped).length === 0)
    throw new InputError(`--callback ${path}: defines none of the hooks ${HOOK_NAMES.join(", ")}`);
  return wrapped;
}

/**
 * The stop signal, when a stop should interrupt this hook: a signal ends a wait in progress, but the
 * hooks that run after it (on_train_end, once the loop is left) are the wind-down and get their
 * deadline instead of failing at once.
 */
function _interruptible(t: Trainer): AbortSignal | undefined {
  const s = t.stop?.signal;
  if (!s || s.aborted || (t as { inLoop?: boolean }).inLoop === false) return undefined;
  return s;
}
