// The communicator the training loop sees, and the choice of whether there is one. A process that no
// MPI launcher started gets null and loads nothing: mpi.ts (bun:ffi, the C bridge, libmpi) is
// required only on the way to a real MPI job, so single-process runs cost nothing and need no MPI.
import { InputError } from "../base/errors.ts";
import type { MpiOptions } from "./mpi.ts";

export interface Comm {
  /** MPI_COMM_WORLD rank */
  readonly rank: number;
  /** world size */
  readonly size: number;
  /** rank among the processes on this machine (MPI_COMM_TYPE_SHARED split) */
  readonly localRank: number;
  readonly localSize: number;
  /** in place: x[i] = Σ over ranks x[i] (MPI_Allreduce MPI_SUM); every rank gets the same bits */
  allreduceSum(x: Float32Array | Float64Array): void;
  /**
   * (an addition to the #18 contract) start the same in-place sum and return at once, so that work goes
   * on while it moves (a gradient bucket during the rest of backward); wait() before reading x. MPI
   * moves it along only inside MPI calls: call test() now and then. Every rank starts the same
   * collectives in the same order. Absent on a Comm that cannot overlap.
   */
  iallreduceSum?(x: Float32Array | Float64Array): CommRequest;
  /** in place: elementwise max over ranks (stop flags, agreement) */
  allreduceMax(x: Int32Array): void;
  /** in place from `root` (default 0) to every rank */
  broadcast(x: Uint8Array, root?: number): void;
  barrier(): void;
  /** end the whole job now with this exit code (MPI_Abort); never returns */
  abort(code: number): never;
  finalize(): void;
}

/** A collective in flight: test() moves it along and says whether it is done; wait() finishes it. */
export interface CommRequest {
  test(): boolean;
  wait(): void;
}

/** The variables each launcher gives its processes: the rank, and the world size when it tells it. */
const LAUNCHERS: { rank: string; size?: string; name: string }[] = [
  { rank: "OMPI_COMM_WORLD_RANK", size: "OMPI_COMM_WORLD_SIZE", name: "Open MPI" },
  { rank: "PMI_RANK", size: "PMI_SIZE", name: "MPICH/hydra, Intel MPI, Slurm PMI" },
  { rank: "PMIX_RANK", name: "PMIx" },
  { rank: "MV2_COMM_WORLD_RANK", size: "MV2_COMM_WORLD_SIZE", name: "MVAPICH" },
];

const isCount = (v: string | undefined) => v !== undefined && /^\d+$/.test(v);

/** whether this process was started by an MPI launcher (MPICH/hydra PMI_RANK, Open MPI OMPI_COMM_WORLD_RANK, PMIx PMIX_RANK, …) */
export function launchedByMpi(env: Record<string, string | undefined> = process.env): boolean {
  return LAUNCHERS.some((l) => isCount(env[l.rank]));
}

/** The world size the launcher announced, or null when it names none. */
export function launcherSize(env: Record<string, string | undefined> = process.env): number | null {
  for (const l of LAUNCHERS) if (isCount(env[l.rank]) && l.size && isCount(env[l.size])) return Number(env[l.size]);
  return null;
}

/** BUNLM_DIST_TIMEOUT, or 300 s: how long a collective may wait for its peers. */
export function distTimeout(env: Record<string, string | undefined> = process.env): number {
  const v = env.BUNLM_DIST_TIMEOUT;
  if (v === undefined || v === "") return 300;
  const t = Number(v);
  if (!Number.isFinite(t) || t <= 0) throw new InputError(`BUNLM_DIST_TIMEOUT=${v}: expected seconds > 0`);
  return t;
}

let loaded = false;

/** Whether this process has loaded the MPI bridge (bun:ffi and libmpi); tests check single runs do not. */
export function mpiLoaded(): boolean {
  return loaded;
}

/**
 * "auto": MPI when launchedByMpi(), else null; "mpi": MPI or an InputError saying how to install/launch;
 * "off": null. null means a single process: nothing is loaded, no library is opened.
 * Collectives give up after `timeoutSeconds` (default 300, env BUNLM_DIST_TIMEOUT): the rank logs one line
 * naming the collective and calls abort(1), so a dead or hung peer ends the job in bounded time.
 */
export function initComm(
  mode: "auto" | "mpi" | "off",
  opts: { timeoutSeconds?: number; chunkElements?: number } = {},
): Comm | null {
  if (mode !== "auto" && mode !== "mpi" && mode !== "off")
    throw new InputError(`--dist ${String(mode)}: expected auto, mpi or off`);
  if (mode === "off" || (mode === "auto" && !launchedByMpi())) return null;
  const timeoutSeconds = opts.timeoutSeconds ?? distTimeout();
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0)
    throw new InputError(`dist timeout ${timeoutSeconds}: expected seconds > 0`);
  loaded = true;
  // required here, not imported above: importing would load bun:ffi into every single-process run
  const { openMpi } = require("./mpi.ts") as typeof import("./mpi.ts");
  const options: MpiOptions = { timeoutSeconds, chunkElements: opts.chunkElements, expectedSize: launcherSize() };
  return openMpi(options);
}
