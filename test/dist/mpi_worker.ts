// One rank of the jobs test/dist/mpi.test.ts launches (`mpiexec -np N bun test/dist/mpi_worker.ts
// SCENARIO`). Each rank prints one JSON line with what it saw; the test holds the expected values.
import { initComm } from "../../lib/dist/index.ts";

/** Rank-dependent values that no sum gets exactly by luck: a 32-bit LCG mapped to [-1, 1). */
export function values(rank: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let s = (rank + 1) * 2654435761;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** SHA-256 of an array's bytes: the lines stay short, so the ranks' lines cannot interleave on stdout. */
export const digest = (a: ArrayBufferView) =>
  new Bun.CryptoHasher("sha256").update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest("hex");

if (import.meta.main) {
  const scenario = process.argv[2];
  const comm = initComm(scenario === "singleton" ? "mpi" : "auto", {
    chunkElements: scenario === "collectives" ? 2 ** 20 : undefined,
  });
  if (!comm) throw new Error("not launched by MPI");
  const { rank, size } = comm;
  if (scenario === "collectives" || scenario === "singleton") {
    const f32 = new Float32Array(values(rank, 1000));
    const f64 = values(rank, 1000);
    comm.allreduceSum(f32);
    comm.allreduceSum(f64);
    // 10M elements in chunks of 2^20 (9 whole chunks and a partial one): every value exact in f32
    const big = new Float32Array(10_000_000);
    for (let i = 0; i < big.length; i++) big[i] = (i % 1000) * (rank + 1) * 0.5;
    comm.allreduceSum(big);
    let bigWrong = 0;
    const factor = (size * (size + 1)) / 2;
    for (let i = 0; i < big.length; i++) if (big[i] !== (i % 1000) * factor * 0.5) bigWrong++;
    // two sums in flight at once, finished out of order
    const early = new Float32Array([rank + 1, 10]),
      late = new Float64Array([0.5 * rank, -1]);
    const r1 = comm.iallreduceSum!(early),
      r2 = comm.iallreduceSum!(late);
    r2.wait();
    while (!r1.test()) Bun.sleepSync(0.1);
    const overlapped = [...early, ...late];
    const max = new Int32Array([rank, -rank, 7 * rank - 3]);
    comm.allreduceMax(max);
    const bytes = new Uint8Array(1000);
    const root = size - 1;
    if (rank === root) for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 255;
    comm.broadcast(bytes, root);
    const t0 = performance.now();
    comm.barrier();
    const barrierMs = performance.now() - t0;
    console.log(
      JSON.stringify({
        rank,
        size,
        localRank: comm.localRank,
        localSize: comm.localSize,
        f32: digest(f32),
        f64: digest(f64),
        bigWrong,
        max: Array.from(max),
        overlapped,
        bytes: digest(bytes),
        barrierMs,
        // the first values in full, so a failure shows numbers
        head: Array.from(f32.subarray(0, 3)),
      }),
    );
    comm.finalize();
  } else if (scenario === "sleep") {
    // rank 1 hangs without dying; rank 0's allreduce must give up after BUNLM_DIST_TIMEOUT
    if (rank === 1) Bun.sleepSync(60_000);
    comm.allreduceSum(new Float32Array(4));
  } else if (scenario === "kill") {
    // rank 1 dies hard while rank 0 waits in an allreduce with the default (300 s) deadline
    if (rank === 1) process.kill(process.pid, "SIGKILL");
    comm.allreduceSum(new Float32Array(4));
    comm.allreduceSum(new Float32Array(4));
  } else throw new Error(`unknown scenario ${scenario}`);
}
