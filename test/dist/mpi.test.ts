// lib/dist against the real MPI the set-up installs (MPICH on Debian): jobs of 2 and 3 ranks launched
// with mpiexec run test/dist/mpi_worker.ts, whose ranks report what the collectives gave them; the
// expected values are computed here. Also: the launcher detection, single runs loading nothing, and
// the two faults a job must survive in bounded time (a rank that hangs, a rank that is killed).
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { distTimeout, launchedByMpi, launcherSize } from "../../lib/dist/index.ts";
import { digest, values } from "./mpi_worker.ts";

const root = join(import.meta.dir, "../..");
const worker = join(import.meta.dir, "mpi_worker.ts");

/** The environment of a process no launcher started (the test runner's, less any MPI variables). */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !/^(PMI|PMIX|OMPI|MV2|HYDRA|MPI)_/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

async function run(cmd: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  // a job that hangs fails its test instead of hanging the suite (mpiexec ends its ranks on SIGTERM)
  const p = Bun.spawn(cmd, { cwd: root, env: cleanEnv(env), stdout: "pipe", stderr: "pipe", timeout: 60_000 });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { stdout, stderr, code, seconds: (performance.now() - t0) / 1000 };
}

const mpiexec = (np: number, scenario: string, env?: Record<string, string>) =>
  run(["mpiexec", "-np", String(np), process.execPath, worker, scenario], env);

type Report = {
  rank: number;
  size: number;
  localRank: number;
  localSize: number;
  f32: string;
  f64: string;
  bigWrong: number;
  max: number[];
  bytes: string;
  head: number[];
  overlapped: number[];
};

const reports = (stdout: string): Report[] =>
  stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Report)
    .sort((a, b) => a.rank - b.rank);

describe("launchedByMpi", () => {
  test("reads each launcher's rank variable", () => {
    expect(launchedByMpi({})).toBe(false);
    expect(launchedByMpi({ PMI_RANK: "0", PMI_SIZE: "2" })).toBe(true); // MPICH's hydra
    expect(launchedByMpi({ OMPI_COMM_WORLD_RANK: "3" })).toBe(true); // Open MPI
    expect(launchedByMpi({ PMIX_RANK: "1" })).toBe(true); // PMIx (Open MPI 5, srun --mpi=pmix)
    expect(launchedByMpi({ MV2_COMM_WORLD_RANK: "0" })).toBe(true); // MVAPICH
    expect(launchedByMpi({ PMI_RANK: "" })).toBe(false);
    expect(launchedByMpi({ PMI_RANK: "x" })).toBe(false);
    expect(launchedByMpi({ PMI_SIZE: "2" })).toBe(false); // a size alone names no rank
    expect(launcherSize({ PMI_RANK: "1", PMI_SIZE: "4" })).toBe(4);
    expect(launcherSize({ OMPI_COMM_WORLD_RANK: "1", OMPI_COMM_WORLD_SIZE: "8" })).toBe(8);
    expect(launcherSize({ PMIX_RANK: "1" })).toBeNull();
  });

  test("BUNLM_DIST_TIMEOUT", () => {
    expect(distTimeout({})).toBe(300);
    expect(distTimeout({ BUNLM_DIST_TIMEOUT: "2.5" })).toBe(2.5);
    expect(() => distTimeout({ BUNLM_DIST_TIMEOUT: "0" })).toThrow("BUNLM_DIST_TIMEOUT=0: expected seconds > 0");
    expect(() => distTimeout({ BUNLM_DIST_TIMEOUT: "soon" })).toThrow("BUNLM_DIST_TIMEOUT=soon");
  });
});

test("a single process loads nothing: initComm('auto') and ('off') are null, no bun:ffi, no libmpi", async () => {
  const script = `
    import { initComm, mpiLoaded } from "./lib/dist/index.ts";
    import { readFileSync } from "node:fs";
    const auto = initComm("auto"), off = initComm("off");
    const maps = readFileSync("/proc/self/maps", "utf8");
    const modules = Object.keys(require.cache).filter((k) => k.includes("lib/dist/mpi") || k.includes("bun:ffi"));
    console.log(JSON.stringify({ auto, off, loaded: mpiLoaded(), libmpi: /libmpi/.test(maps), modules }));`;
  const r = await run([process.execPath, "-e", script]);
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout)).toEqual({ auto: null, off: null, loaded: false, libmpi: false, modules: [] });
});

describe("collectives on 2 ranks", async () => {
  const r = await mpiexec(2, "collectives");
  const [a, b] = reports(r.stdout);

  test("the job ran", () => {
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect([a!.rank, b!.rank]).toEqual([0, 1]);
  });

  test("rank, size, local rank (both ranks on this machine)", () => {
    expect([a!.size, a!.localRank, a!.localSize]).toEqual([2, 0, 2]);
    expect([b!.size, b!.localRank, b!.localSize]).toEqual([2, 1, 2]);
  });

  test("allreduceSum f32 and f64: the correctly rounded sum of the two ranks' values, on both", () => {
    // with two terms the sum is one IEEE addition, so its bits are known exactly
    const v0 = values(0, 1000),
      v1 = values(1, 1000);
    const f32 = new Float32Array(1000).map((_, i) => Math.fround(v0[i]!) + Math.fround(v1[i]!));
    const f64 = new Float64Array(1000).map((_, i) => v0[i]! + v1[i]!);
    expect(a!.f32).toBe(digest(f32));
    expect(b!.f32).toBe(digest(f32));
    expect(a!.f64).toBe(digest(f64));
    expect(b!.f64).toBe(digest(f64));
  });

  test("a 10M-element sum in chunks of 2^20 is right everywhere", () => {
    expect([a!.bigWrong, b!.bigWrong]).toEqual([0, 0]);
  });

  test("iallreduceSum: two sums in flight, finished out of order", () => {
    expect(a!.overlapped).toEqual([3, 20, 0.5, -2]);
    expect(b!.overlapped).toEqual([3, 20, 0.5, -2]);
  });

  test("allreduceMax and broadcast from the last rank", () => {
    expect(a!.max).toEqual([1, 0, 4]);
    expect(b!.max).toEqual([1, 0, 4]);
    const bytes = new Uint8Array(1000).map((_, i) => (i * 7 + 3) & 255);
    expect(a!.bytes).toBe(digest(bytes));
    expect(b!.bytes).toBe(digest(bytes));
  });
});

test("3 ranks: every rank gets the same bits of a sum whose order matters", async () => {
  const r = await mpiexec(3, "collectives");
  expect(r.code).toBe(0);
  const rs = reports(r.stdout);
  expect(rs.map((x) => x.rank)).toEqual([0, 1, 2]);
  for (const x of rs) {
    expect(x.f32).toBe(rs[0]!.f32);
    expect(x.f64).toBe(rs[0]!.f64);
    expect(x.bigWrong).toBe(0);
    expect(x.max).toEqual([2, 0, 11]);
  }
  // and that sum is one of the f32 roundings of the three terms (which pair goes first is MPI's choice)
  const v = [0, 1, 2].map((k) => new Float32Array(values(k, 1000)));
  for (let i = 0; i < 3; i++) {
    const [x, y, z] = [v[0]![i]!, v[1]![i]!, v[2]![i]!];
    const orders = [
      Math.fround(Math.fround(x + y) + z),
      Math.fround(Math.fround(x + z) + y),
      Math.fround(Math.fround(y + z) + x),
    ];
    expect(orders).toContain(rs[0]!.head[i]!);
  }
}, 30_000);

test("initComm('mpi') without a launcher: a world of one, sums unchanged", async () => {
  const r = await run([process.execPath, worker, "singleton"]);
  expect(r.code).toBe(0);
  const [x] = reports(r.stdout);
  expect([x!.size, x!.rank, x!.localSize, x!.bigWrong]).toEqual([1, 0, 1, 0]);
  expect(x!.f32).toBe(digest(new Float32Array(values(0, 1000))));
  expect(x!.max).toEqual([0, 0, -3]);
});

describe("faults end the job non-zero in bounded time", () => {
  test("a rank that hangs: the other gives up after BUNLM_DIST_TIMEOUT=3 with one line, and the job ends", async () => {
    const r = await mpiexec(2, "sleep", { BUNLM_DIST_TIMEOUT: "3" });
    expect(r.code).not.toBe(0);
    expect(r.seconds).toBeGreaterThan(2.9);
    expect(r.seconds).toBeLessThan(10);
    const ours = r.stderr.split("\n").filter((l) => l.startsWith("bunlm:"));
    expect(ours).toEqual([
      "bunlm: error: rank 0/2: allreduceSum of 4 f32 did not complete within 3 s (BUNLM_DIST_TIMEOUT): a peer died or hangs; aborting the job",
    ]);
  }, 30_000);

  test("a launch that hangs in MPI_Init: the init watchdog ends the rank after the timeout, with one line", async () => {
    // a PMI server that accepts the rank's connection and never answers stands in for a dead peer
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open() {} } });
    try {
      const r = await run([process.execPath, worker, "collectives"], {
        PMI_PORT: `127.0.0.1:${server.port}`,
        PMI_RANK: "0",
        PMI_SIZE: "2",
        PMI_ID: "0",
        BUNLM_DIST_TIMEOUT: "2",
      });
      expect(r.code).toBe(1);
      expect(r.seconds).toBeLessThan(8);
      expect(r.stderr).toBe(
        "bunlm: error: rank 0: MPI_Init did not complete within 2 s (BUNLM_DIST_TIMEOUT): a peer died or hangs; exiting\n",
      );
    } finally {
      server.stop(true);
    }
  }, 30_000);

  test("a rank that is killed: the launcher ends the job non-zero long before the 300 s deadline", async () => {
    const r = await mpiexec(2, "kill");
    expect(r.code).not.toBe(0);
    expect(r.seconds).toBeLessThan(60);
    // rank 0 never finished its collectives (hydra writes its own report of the kill to stdout)
    expect(r.stdout).not.toContain("{");
  }, 90_000);
});
