// Writes N MB of `tokenize encode`-style JSONL ({"ids":[...]}, ids < 256) to a file, deterministically.
import { openSync, writeSync, closeSync } from "node:fs";
const [path, mb] = [process.argv[2]!, Number(process.argv[3] ?? 100)];
const fd = openSync(path, "w");
let written = 0,
  s = 1;
while (written < mb * 1e6) {
  const n = 200 + (s % 600);
  const ids = new Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids[i] = s >>> 24;
  }
  const line = `{"ids":[${ids.join(",")}]}\n`;
  writeSync(fd, line);
  written += line.length;
}
closeSync(fd);
