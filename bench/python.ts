// Which python runs the PyTorch reference: BUNLM_PYTHON, else `python3` on the PATH (a GPU image keeps
// torch in its own venv there), else Debian's /usr/bin/python3, the first that imports torch. When
// none does, bench/setup.sh installs Debian's python3-torch where it can (root, apt) and we look again.
import { join } from "node:path";

const imports = (python: string) =>
  Bun.spawnSync([python, "-c", "import torch"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

let found: string | null | undefined;

/** The python that imports torch, or null (the benches then report PyTorch's figures as null). */
export function torchPython(): string | null {
  if (found !== undefined) return found;
  const candidates = process.env.BUNLM_PYTHON ? [process.env.BUNLM_PYTHON] : ["python3", "/usr/bin/python3"];
  found = candidates.find(imports) ?? null;
  if (found === null && !process.env.BUNLM_PYTHON) {
    Bun.spawnSync(["bash", join(import.meta.dir, "setup.sh")], { stderr: "inherit" });
    found = candidates.find(imports) ?? null;
  }
  return found;
}
