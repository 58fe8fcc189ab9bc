// Data parallelism across processes and machines through MPI (docs/scaling.md).
export {
  type Comm,
  type CommRequest,
  distTimeout,
  initComm,
  launchedByMpi,
  launcherSize,
  mpiLoaded,
} from "./comm.ts";
