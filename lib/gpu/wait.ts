// Waiting on GPU promises without burning a core. Awaiting mapAsync()/onSubmittedWorkDone() directly
// busy-spins the JS thread in both bindings (DESIGN.md: on 2 cores lavapipe loses about half its
// matmul speed), so we poll: sleep 1 ms, give the event loop one turn so the binding can deliver the
// callback, repeat.

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export async function settle<T>(p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await yieldToLoop();
  while (!done) {
    Bun.sleepSync(1);
    await yieldToLoop();
  }
  return p;
}
