// Preloaded by bun test (bunfig.toml): kernels compile at their first dispatch, 0.2-2.5 s each on
// lavapipe (more for attention's large per-thread arrays), so a test's first run needs more than 5 s.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(120_000);
