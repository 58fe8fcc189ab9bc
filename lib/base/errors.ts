// The error a user can act on: bad input, a file, a flag or a field named in one line. Commands print
// its message as `bunlm: error: ...` and exit 1, without a stack trace (cmd/_cli.ts).
export class InputError extends Error {
  code = "E_INPUT";
}
