/*
 * bunlm's bridge to MPI, compiled at load time by Bun's built-in C compiler (TinyCC, `cc` from
 * bun:ffi) against the system's mpi.h. It exports plain C functions over int/double/pointer
 * arguments, so the TypeScript side never sees an MPI handle: MPICH's handles are integers
 * (MPI_COMM_WORLD is 0x44000000) while Open MPI's are addresses of global symbols
 * (&ompi_mpi_comm_world); mpi.h's own declarations serve both (Open MPI's objects are looked up at
 * load time, see resolve_handles).
 *
 * Collectives are started non-blocking (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) into a small table
 * of requests and completed by bunlm_mpi_wait, which polls MPI_Test until the request is done or a
 * deadline passes: blocking MPI calls have no timeout, and a peer that hangs would hang us forever.
 * The poll runs here rather than in JavaScript because MPI progresses only inside MPI calls: a large
 * allreduce needs thousands of MPI_Test calls, and a sleep between each would starve it.
 */
#include <mpi.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#ifdef OPEN_MPI
#include <dlfcn.h>
#endif

#define BUNLM_SLOTS 256

static MPI_Request reqs[BUNLM_SLOTS];
static int used[BUNLM_SLOTS];
static MPI_Comm local_comm;
static int world_rank = -1, world_size = 0, local_rank = -1, local_size = 0;

/* the handles we use, read once: ours → MPI's, 0 f32, 1 f64, 2 i32, 3 bytes; 0 sum, 1 max */
static MPI_Comm world;
static MPI_Datatype dtypes[4];
static MPI_Op ops[2];
static MPI_Info info_null;

#ifdef OPEN_MPI
/*
 * Open MPI's handles are addresses of objects in libmpi (MPI_COMM_WORLD is &ompi_mpi_comm_world).
 * TinyCC links the functions of a shared library but leaves references to its data unresolved
 * (measured with Open MPI 4.1.4's libmpi.so.40), so the objects are looked up at run time. Promoting
 * libmpi to RTLD_GLOBAL on the way also lets Open MPI's plugins, which it dlopens, see its symbols.
 */
static void *ompi_lib;
static void *ompi(const char *name) {
  void *p = dlsym(RTLD_DEFAULT, name);
  if (!p && !ompi_lib) ompi_lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  if (!p && !ompi_lib) ompi_lib = dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
  if (!p && ompi_lib) p = dlsym(ompi_lib, name);
  return p;
}
static int resolve_handles(void) {
  world = (MPI_Comm)ompi("ompi_mpi_comm_world");
  dtypes[0] = (MPI_Datatype)ompi("ompi_mpi_float");
  dtypes[1] = (MPI_Datatype)ompi("ompi_mpi_double");
  dtypes[2] = (MPI_Datatype)ompi("ompi_mpi_int");
  dtypes[3] = (MPI_Datatype)ompi("ompi_mpi_byte");
  ops[0] = (MPI_Op)ompi("ompi_mpi_op_sum");
  ops[1] = (MPI_Op)ompi("ompi_mpi_op_max");
  info_null = (MPI_Info)ompi("ompi_mpi_info_null");
  return world && dtypes[0] && dtypes[1] && dtypes[2] && dtypes[3] && ops[0] && ops[1] && info_null;
}
#else
/* MPICH and its derivatives (Intel MPI, MVAPICH): the handles are integer constants */
static int resolve_handles(void) {
  world = MPI_COMM_WORLD;
  dtypes[0] = MPI_FLOAT;
  dtypes[1] = MPI_DOUBLE;
  dtypes[2] = MPI_INT;
  dtypes[3] = MPI_BYTE;
  ops[0] = MPI_SUM;
  ops[1] = MPI_MAX;
  info_null = MPI_INFO_NULL;
  return 1;
}
#endif

static MPI_Datatype dtype_of(int t) { return dtypes[t < 0 || t > 3 ? 3 : t]; }
static MPI_Op op_of(int o) { return ops[o == 1]; }

static int free_slot(void) {
  int i;
  for (i = 0; i < BUNLM_SLOTS; i++)
    if (!used[i]) return i;
  return -1;
}

/*
 * MPI_Init has no deadline either, and a launch can hang in it (a peer that died before it connected:
 * seen once in ~60 launches of MPICH 4.0.2 on a loaded machine). A watchdog thread ends this process
 * when init takes longer than the collectives' timeout; the launcher then ends the others.
 */
static volatile int init_done;
static double init_timeout;
static const char *init_message;
static int init_message_len;

static void *init_watchdog(void *unused) {
  struct timespec tick;
  double waited = 0;
  tick.tv_sec = 0;
  tick.tv_nsec = 100000000;
  while (!init_done && waited < init_timeout) {
    nanosleep(&tick, 0);
    waited += 0.1;
  }
  if (!init_done) {
    write(2, init_message, init_message_len);
    _exit(1);
  }
  return unused;
}

/* returns the thread level provided (>= 0), -1000000 when Open MPI's handles are not found, or
 * -(MPI error code) - 1; `message` (bytes kept alive by
 * the caller) is written to stderr if init outlives `timeout` seconds */
int bunlm_mpi_init(double timeout, const char *message, int message_len) {
  int inited = 0, provided = 0, err;
  pthread_t watchdog;
  if (!resolve_handles()) return -1000000;
  MPI_Initialized(&inited);
  if (inited) MPI_Query_thread(&provided);
  else {
    init_timeout = timeout;
    init_message = message;
    init_message_len = message_len;
    init_done = 0;
    if (pthread_create(&watchdog, 0, init_watchdog, 0) == 0) pthread_detach(watchdog);
    /* FUNNELED: only the JavaScript thread calls MPI (the GPU's own threads never do) */
    err = MPI_Init_thread(0, 0, MPI_THREAD_FUNNELED, &provided);
    init_done = 1;
    if (err != MPI_SUCCESS) return -err - 1;
  }
  MPI_Comm_rank(world, &world_rank);
  MPI_Comm_size(world, &world_size);
  /* the processes that share this machine's memory: their order picks each rank's adapter */
  err = MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, info_null, &local_comm);
  if (err != MPI_SUCCESS) return -err - 1;
  MPI_Comm_rank(local_comm, &local_rank);
  MPI_Comm_size(local_comm, &local_size);
  return provided;
}

int bunlm_mpi_rank(void) { return world_rank; }
int bunlm_mpi_size(void) { return world_size; }
int bunlm_mpi_local_rank(void) { return local_rank; }
int bunlm_mpi_local_size(void) { return local_size; }

/* in place over MPI_COMM_WORLD; returns the request's slot (>= 0), -1 when the table is full, or
 * -(MPI error code) - 2 */
int bunlm_mpi_iallreduce(void *buf, int count, int dtype, int op) {
  int s = free_slot(), err;
  if (s < 0) return -1;
  err = MPI_Iallreduce(MPI_IN_PLACE, buf, count, dtype_of(dtype), op_of(op), world, &reqs[s]);
  if (err != MPI_SUCCESS) return -err - 2;
  used[s] = 1;
  return s;
}

int bunlm_mpi_ibcast(void *buf, int count, int root) {
  int s = free_slot(), err;
  if (s < 0) return -1;
  err = MPI_Ibcast(buf, count, dtypes[3], root, world, &reqs[s]);
  if (err != MPI_SUCCESS) return -err - 2;
  used[s] = 1;
  return s;
}

int bunlm_mpi_ibarrier(void) {
  int s = free_slot(), err;
  if (s < 0) return -1;
  err = MPI_Ibarrier(world, &reqs[s]);
  if (err != MPI_SUCCESS) return -err - 2;
  used[s] = 1;
  return s;
}

/* one MPI_Test: 1 done (the slot is freed), 0 not yet, < 0 an MPI error */
int bunlm_mpi_test(int s) {
  int flag = 0, err = MPI_Test(&reqs[s], &flag, MPI_STATUS_IGNORE);
  if (err != MPI_SUCCESS) return -err - 1;
  if (flag) used[s] = 0;
  return flag;
}

/*
 * Poll slot `s` until it completes (1) or `timeout` seconds pass (0); < 0 is an MPI error. The first
 * `spin` seconds poll back to back (a transfer in flight moves only while we call MPI); after that
 * each poll is followed by a sleep of `nap` seconds, so a rank waiting for a slower peer leaves the
 * CPU to the processes still computing (on a shared machine, the peer itself).
 */
int bunlm_mpi_wait(int s, double timeout, double spin, double nap) {
  double start = MPI_Wtime(), now;
  struct timespec ts;
  int r;
  ts.tv_sec = 0;
  ts.tv_nsec = (long)(nap * 1e9);
  for (;;) {
    r = bunlm_mpi_test(s);
    if (r != 0) return r;
    now = MPI_Wtime() - start;
    if (now > timeout) return 0;
    if (now > spin) nanosleep(&ts, 0);
  }
}

int bunlm_mpi_abort(int code) { return MPI_Abort(world, code); }

int bunlm_mpi_finalize(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (done) return 0;
  MPI_Comm_free(&local_comm);
  return MPI_Finalize();
}
