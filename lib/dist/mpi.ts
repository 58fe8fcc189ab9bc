// MPI through bun:ffi: the Comm of lib/dist, for processes started by mpirun/mpiexec.
//
// Which bridge, and why: MPICH's handles are plain integers (MPI_COMM_WORLD = 0x44000000, MPI_FLOAT =
// 0x4c00040a) that a dlopen of libmpich could pass as numbers, but Open MPI's are addresses of global
// symbols (&ompi_mpi_comm_world), so a pure dlopen would need two tables of handles and per-version
// symbol names. Instead a 130-line C shim (mpi_shim.c) is compiled when MPI is first needed by Bun's
// built-in C compiler (TinyCC, `cc` from bun:ffi) against the system's own mpi.h: the macros of
// whichever MPI is installed resolve the handles, and the shim exports plain int/double/pointer
// functions. TinyCC parses MPICH 4.0's mpi.h and compiles the shim in ~20-50 ms per rank (measured on
// Debian 12); it needs the headers (libmpich-dev or libopenmpi-dev), which the set-up installs.
//
// Collectives never block without a deadline: each is started non-blocking and polled (in C, see
// bunlm_mpi_wait) until it completes or `timeoutSeconds` pass; then the rank logs one line naming the
// collective and calls MPI_Abort, so a peer that died or hangs ends the whole job in bounded time.
// (A peer that dies is usually caught sooner by the launcher: hydra and Open MPI's mpirun kill the
// job when a rank exits abnormally.)
import { cc, ptr } from "bun:ffi";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { log } from "../base/log.ts";
import type { Comm, CommRequest } from "./comm.ts";

const INSTALL_HINT = "install mpich (apt-get install mpich libmpich-dev) or run without mpirun";

/** Polling while a collective is in flight: back to back for SPIN seconds, then with NAP-second sleeps. */
const SPIN = 0.002;
const NAP = 50e-6;
/**
 * MPI counts are C ints: a larger array goes as several collectives of at most this many elements
 * (2^30 keeps every byte offset of an f64 chunk inside what the int count can describe, with room).
 */
const CHUNK = 2 ** 30;

/** How to compile the shim against the installed MPI. */
export interface MpiBuild {
  /** directories holding mpi.h (and what it includes) */
  include: string[];
  /**
   * the MPI library's file, linked by path rather than by -l: TinyCC searches the system's directories
   * before any -L, and on Debian /usr/lib/<triplet>/libmpi.so is an alternatives link that may point
   * to the other MPI than the one whose mpi.h we compile against
   */
  library: string;
  /** where the answer came from: "mpicc -show", "pkg-config mpich", a known path */
  from: string;
}

const DEBIAN_TRIPLET: Partial<Record<string, string>> = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu" };
const SYSTEM_LIB_DIRS = [`/usr/lib/${DEBIAN_TRIPLET[process.arch] ?? ""}`, "/usr/lib64", "/usr/lib", "/usr/local/lib"];

function parseCompilerLine(line: string, from: string): MpiBuild | null {
  const words = line.trim().split(/\s+/);
  const include = words.filter((w) => w.startsWith("-I")).map((w) => w.slice(2));
  const libDirs = words.filter((w) => w.startsWith("-L")).map((w) => w.slice(2));
  const lib = words.find((w) => w === "-lmpich" || w === "-lmpi")?.slice(2);
  if (!lib || !include.some((d) => existsSync(join(d, "mpi.h")))) return null;
  // only the MPI library itself: its own dependencies (hwloc, ucx) come with it through the loader
  for (const dir of [...libDirs, ...SYSTEM_LIB_DIRS]) {
    const library = join(dir, `lib${lib}.so`);
    if (existsSync(library)) return { include, library, from };
  }
  return null;
}

function run(cmd: string[]): string | null {
  try {
    const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "ignore" });
    return p.exitCode === 0 ? p.stdout.toString() : null;
  } catch {
    return null; // not installed
  }
}

/**
 * Find mpi.h and the library. The compiler wrapper comes first, since it belongs to the MPI whose
 * mpiexec is on PATH (a cluster's `module load` puts its own there); then pkg-config; then Debian's
 * paths for MPICH and Open MPI.
 */
export function findMpi(): MpiBuild | null {
  for (const args of [["-show"], ["--showme"]]) {
    const out = run(["mpicc", ...args]);
    const found = out && parseCompilerLine(out, `mpicc ${args[0]}`);
    if (found) return found;
  }
  for (const pkg of ["mpich", "ompi-c", "ompi"]) {
    const out = run(["pkg-config", "--cflags", "--libs", pkg]);
    const found = out && parseCompilerLine(out, `pkg-config ${pkg}`);
    if (found) return found;
  }
  const triplet = DEBIAN_TRIPLET[process.arch];
  if (triplet) {
    const libDir = `/usr/lib/${triplet}`;
    const known: [string, string][] = [
      [`/usr/include/${triplet}/mpich`, `${libDir}/libmpich.so`],
      [`${libDir}/openmpi/include`, `${libDir}/openmpi/lib/libmpi.so`],
    ];
    for (const [inc, library] of known)
      if (existsSync(join(inc, "mpi.h")) && existsSync(library)) return { include: [inc], library, from: inc };
  }
  return null;
}

const SYMBOLS = {
  bunlm_mpi_init: { args: ["double", "ptr", "int"], returns: "int" },
  bunlm_mpi_rank: { args: [], returns: "int" },
  bunlm_mpi_size: { args: [], returns: "int" },
  bunlm_mpi_local_rank: { args: [], returns: "int" },
  bunlm_mpi_local_size: { args: [], returns: "int" },
  bunlm_mpi_iallreduce: { args: ["ptr", "int", "int", "int"], returns: "int" },
  bunlm_mpi_ibcast: { args: ["ptr", "int", "int"], returns: "int" },
  bunlm_mpi_ibarrier: { args: [], returns: "int" },
  bunlm_mpi_test: { args: ["int"], returns: "int" },
  bunlm_mpi_wait: { args: ["int", "double", "double", "double"], returns: "int" },
  bunlm_mpi_abort: { args: ["int"], returns: "int" },
  bunlm_mpi_finalize: { args: [], returns: "int" },
} as const;

function compileShim(build: MpiBuild) {
  try {
    return cc({
      // TinyCC takes a shared library among its input files, as a linker does (Bun's cc takes a list of
      // files, though its types name one)
      source: [join(import.meta.dir, "mpi_shim.c"), build.library] as unknown as string,
      include: build.include,
      symbols: SYMBOLS,
    }).symbols;
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new InputError(`MPI: could not build the bridge against ${build.from} (${why}); ${INSTALL_HINT}`);
  }
}

type Shim = ReturnType<typeof compileShim>;

/** The element types a reduction takes, as the shim numbers them (0 f32, 1 f64, 2 i32). */
const DTYPE = { Float32Array: 0, Float64Array: 1, Int32Array: 2 } as const;

export interface MpiOptions {
  timeoutSeconds: number;
  /** elements per collective call (tests lower it to exercise the split of arrays past 2^31) */
  chunkElements?: number;
  /** the world size the launcher announced in the environment, when it did */
  expectedSize?: number | null;
}

class MpiComm implements Comm {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  private finalized = false;
  private readonly chunk: number;

  constructor(
    private readonly shim: Shim,
    private readonly timeout: number,
    chunk: number,
  ) {
    this.rank = shim.bunlm_mpi_rank();
    this.size = shim.bunlm_mpi_size();
    this.localRank = shim.bunlm_mpi_local_rank();
    this.localSize = shim.bunlm_mpi_local_size();
    this.chunk = chunk;
  }

  private check(what: string, slot: number): number {
    if (this.finalized) throw new Error(`MPI ${what} after finalize`);
    if (slot === -1) throw new Error(`MPI ${what}: more than 256 collectives in flight`);
    if (slot < 0) this.fail(`${what} could not start (MPI error ${-slot - 2})`);
    return slot;
  }

  private fail(message: string): never {
    log.error(`rank ${this.rank}/${this.size}: ${message}; aborting the job`);
    // the launcher relays our stderr through its proxy and drops what is still in transit when the
    // abort tears the job down (hydra lost the line in 1 of 8 tries); a moment lets it through
    Bun.sleepSync(250);
    this.abort(1);
  }

  /** Finish `slots` in order within the deadline that started at `t0` (ms). */
  private finish(what: string, slots: number[], t0: number, keep: unknown): void {
    for (const s of slots) {
      const left = this.timeout - (performance.now() - t0) / 1000;
      const r = this.shim.bunlm_mpi_wait(s, Math.max(left, 0), SPIN, NAP);
      if (r === 0)
        this.fail(`${what} did not complete within ${this.timeout} s (BUNLM_DIST_TIMEOUT): a peer died or hangs`);
      if (r < 0) this.fail(`${what} failed (MPI error ${-r - 1})`);
    }
    // the buffer must outlive the transfer: holding it until here keeps the collector off it
    void keep;
  }

  private startReduce(x: Float32Array | Float64Array | Int32Array, op: 0 | 1, what: string): number[] {
    const dtype = DTYPE[x.constructor.name as keyof typeof DTYPE];
    const slots: number[] = [];
    for (let i = 0; i < x.length; i += this.chunk) {
      const n = Math.min(this.chunk, x.length - i);
      slots.push(this.check(what, this.shim.bunlm_mpi_iallreduce(ptr(x, i * x.BYTES_PER_ELEMENT), n, dtype, op)));
    }
    return slots;
  }

  allreduceSum(x: Float32Array | Float64Array): void {
    this.iallreduceSum(x).wait();
  }

  /** The sum started, not waited for (Comm.iallreduceSum); the deadline counts from the start. */
  iallreduceSum(x: Float32Array | Float64Array): CommRequest {
    const what = `allreduceSum of ${x.length} ${x instanceof Float32Array ? "f32" : "f64"}`;
    return this.request(what, x, () => this.startReduce(x, 0, what));
  }

  allreduceMax(x: Int32Array): void {
    const what = `allreduceMax of ${x.length} i32`;
    this.request(what, x, () => this.startReduce(x, 1, what)).wait();
  }

  broadcast(x: Uint8Array, root = 0): void {
    const what = `broadcast of ${x.length} bytes from rank ${root}`;
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new Error(`MPI ${what}: no such rank (size ${this.size})`);
    this.request(what, x, () => {
      const slots: number[] = [];
      for (let i = 0; i < x.length; i += this.chunk) {
        const n = Math.min(this.chunk, x.length - i);
        slots.push(this.check(what, this.shim.bunlm_mpi_ibcast(ptr(x, i), n, root)));
      }
      return slots;
    }).wait();
  }

  barrier(): void {
    this.request("barrier", null, () => [this.check("barrier", this.shim.bunlm_mpi_ibarrier())]).wait();
  }

  private request(what: string, keep: unknown, start: () => number[]): CommRequest {
    const t0 = performance.now();
    // an empty array has no address to give MPI; the other ranks' empty arrays match it
    const slots = keep instanceof Object && (keep as ArrayLike<number>).length === 0 ? [] : start();
    let done = false;
    return {
      test: () => {
        if (done) return true;
        while (slots.length > 0) {
          const r = this.shim.bunlm_mpi_test(slots[0]!);
          if (r < 0) this.fail(`${what} failed (MPI error ${-r - 1})`);
          if (r === 0) {
            if ((performance.now() - t0) / 1000 > this.timeout)
              this.fail(`${what} did not complete within ${this.timeout} s (BUNLM_DIST_TIMEOUT): a peer died or hangs`);
            return false;
          }
          slots.shift();
        }
        done = true;
        return true;
      },
      wait: () => {
        if (done) return;
        this.finish(what, slots, t0, keep);
        slots.length = 0;
        done = true;
      },
    };
  }

  abort(code: number): never {
    this.shim.bunlm_mpi_abort(code);
    process.exit(code); // MPI_Abort does not return; this is for an MPI that lets it
  }

  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.shim.bunlm_mpi_finalize();
  }
}

/** Build the bridge, join the job (MPI_Init_thread, FUNNELED) and return this process's Comm. */
export function openMpi(opts: MpiOptions): MpiComm {
  const build = findMpi();
  if (!build)
    throw new InputError(`MPI: no mpi.h and MPI library found (mpicc, pkg-config, /usr/include); ${INSTALL_HINT}`);
  log.debug(`MPI: bridge built against ${build.from} (${build.library})`);
  const shim = compileShim(build);
  // written from C by the init watchdog, when JavaScript cannot run: the logger's format by hand
  const rankName = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"].map((k) => process.env[k]).find((v) => v) ?? "?";
  const hang = Buffer.from(
    `bunlm: error: rank ${rankName}: MPI_Init did not complete within ${opts.timeoutSeconds} s (BUNLM_DIST_TIMEOUT): a peer died or hangs; exiting\n`,
  );
  const level = shim.bunlm_mpi_init(opts.timeoutSeconds, ptr(hang), hang.length);
  if (level === -1_000_000)
    throw new InputError(
      `MPI: Open MPI's predefined handles (ompi_mpi_comm_world, …) not found in ${build.from}'s libmpi`,
    );
  if (level < 0) throw new InputError(`MPI: MPI_Init_thread failed (MPI error ${-level - 1}); ${INSTALL_HINT}`);
  void hang; // the watchdog may read it until init returns
  const comm = new MpiComm(shim, opts.timeoutSeconds, opts.chunkElements ?? CHUNK);
  if (opts.expectedSize != null && comm.size !== opts.expectedSize) {
    // a launcher of one MPI starting a program linked with another: each rank is a world of its own
    shim.bunlm_mpi_finalize();
    throw new InputError(
      `MPI: the launcher started ${opts.expectedSize} processes but ${build.from}'s MPI sees ${comm.size}: mpirun and the MPI library differ (use the mpiexec of the installed MPI)`,
    );
  }
  // a clean exit finalizes (MPI requires it); a failing one leaves the job to the launcher, which ends
  // the other ranks when one exits non-zero (MPI_Finalize could wait forever on a peer that is gone)
  process.on("exit", (code) => {
    if (code === 0) comm.finalize();
  });
  return comm;
}
