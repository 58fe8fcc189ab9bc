// Multiple-choice accuracy for `eval`, scored as lm-evaluation-harness scores a multiple_choice task:
// each choice's log-likelihood as a continuation of the context, the prediction the choice with the
// highest (acc), or the highest per character of the choice (acc_norm: lm_eval/api/task.py
// process_results divides by len(choice), the choice without the delimiter, counted in Unicode code
// points as Python's len counts them); ties go to the first choice (numpy's argmax).
// A question is a JSONL row {"context": text, "choices": [text, ...], "answer": index}; the
// continuation scored is delimiter + choice (lm-eval's target_delimiter, a space by default).
// Tokens as lm_eval/api/model.py _encode_pair makes them: trailing whitespace of the context moves to
// the front of the continuation, the continuation's tokens are those of encode(context +
// continuation) past the length of encode(context) (so a merge across the boundary is scored as the
// model would see it), and an empty context becomes the prefix token alone. A sequence longer than
// the window keeps its last L + 1 tokens (lm-eval truncates from the left too).
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { IGNORE_INDEX } from "../ops/cross_entropy.ts";
import type { RowRecord } from "../io/readers.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import type { ModelParams } from "../model/params.ts";
import { scoreRequests, type ScoreRequest } from "./eval_score.ts";
import type { ScoringTokens } from "./eval_text.ts";

export interface Question {
  context: string;
  choices: string[];
  answer: number;
  source: string;
  index: number;
}

const QuestionSchema = v.object({
  context: v.string("expected a string"),
  choices: v.pipe(
    v.array(v.pipe(v.string("expected a string"), v.minLength(1, "is empty")), "expected a list of strings"),
    v.minLength(1, "is empty; a question needs at least one choice"),
  ),
  answer: v.pipe(
    v.number("expected the index of the right choice"),
    v.integer("expected a whole number"),
    v.minValue(0, "must be 0 or more"),
  ),
});

/** A task row checked: context, a non-empty list of non-empty choices, an answer that indexes one. */
export function parseQuestion(r: RowRecord): Question {
  const where = `${r.source}:${r.index}`;
  const p = v.safeParse(QuestionSchema, r.row);
  if (!p.success) {
    const issue = p.issues[0]!;
    const path = issue.path?.map((x: any) => x.key).join(".") ?? "";
    const missing = issue.input === undefined && issue.path?.length === 1;
    throw new InputError(
      `${where}: ${missing ? `no "${path}" field (a question is {"context", "choices", "answer"})` : `${path}: ${issue.message}`}`,
    );
  }
  const q = p.output;
  if (q.answer >= q.choices.length)
    throw new InputError(
      `${where}: answer: ${q.answer} is past the last choice (${q.choices.length} choices, numbered from 0)`,
    );
  return { ...q, source: r.source, index: r.index };
}

/** The context and continuation tokens of one (context, continuation) pair, as lm-eval's _encode_pair. */
export function encodePair(
  tok: Tokenizer,
  special: ScoringTokens,
  context: string,
  continuation: string,
): { context: number[]; continuation: number[] } {
  const enc = (s: string) => {
    const ids = tok.encode(s);
    return special.addedBos !== null && ids[0] !== special.addedBos ? [special.addedBos, ...ids] : ids;
  };
  if (context === "") {
    const cont = tok.encode(continuation);
    if (special.addedBos !== null && cont[0] === special.addedBos) cont.shift();
    if (special.prefix === null) return { context: cont.slice(0, 1), continuation: cont.slice(1) };
    return special.prefix !== cont[0]
      ? { context: [special.prefix], continuation: cont }
      : { context: cont.slice(0, 1), continuation: cont.slice(1) };
  }
  const kept = context.trimEnd();
  const moved = context.slice(kept.length);
  const whole = enc(kept + moved + continuation);
  const ctx = enc(kept);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

/** The request that scores `continuation` after `context` in a window of L. */
export function pairRequest(context: number[], continuation: number[], L: number): ScoreRequest {
  const all = [...context, ...continuation].slice(-(L + 1));
  const ids = all.slice(0, -1);
  const targets = all.slice(1).map((t, i) => (i >= ids.length - continuation.length ? t : IGNORE_INDEX));
  return { ids, targets };
}

export interface QuestionScore {
  question: Question;
  /** Σ log p of each choice's continuation tokens */
  loglikelihoods: number[];
  pred: number;
  predNorm: number;
}

const argmax = (x: number[]) => x.reduce((best, v, i) => (v > x[best]! ? i : best), 0);

export interface TaskEvalOpts {
  seqLen: number;
  batchSize: number;
  /** lm-eval's target_delimiter, put between the context and each choice */
  delimiter: string;
  onQuestion?: (s: QuestionScore) => void;
  onProgress?: (questions: number) => void;
}

export interface TaskResult {
  n: number;
  acc: number;
  acc_stderr: number;
  acc_norm: number;
  acc_norm_stderr: number;
}

/** lm-eval's mean_stderr: the sample standard deviation (n - 1) over √n. */
function stderr(hits: number, n: number): number {
  if (n < 2) return Number.NaN;
  const m = hits / n;
  const variance = (hits * (1 - m) ** 2 + (n - hits) * m ** 2) / (n - 1);
  return Math.sqrt(variance / n);
}

/** Every question of a task file, checked before any is scored (at most `limit`; 0: all). */
export async function readQuestions(rows: AsyncIterable<RowRecord>, limit: number, file: string): Promise<Question[]> {
  const out: Question[] = [];
  for await (const r of rows) {
    if (limit && out.length >= limit) break;
    out.push(parseQuestion(r));
  }
  if (out.length === 0)
    throw new InputError(`${file}: no questions (a question is a row {"context", "choices", "answer"})`);
  return out;
}

/** The requests that score each choice of a question. */
function choiceRequests(tok: Tokenizer, special: ScoringTokens, q: Question, o: TaskEvalOpts): ScoreRequest[] {
  return q.choices.map((choice, i) => {
    const e = encodePair(tok, special, q.context, o.delimiter + choice);
    const where = `${q.source}:${q.index}: choices.${i}`;
    if (e.context.length === 0)
      throw new InputError(`${where}: the context is empty and the tokenizer has no bos or eos token to stand for it`);
    if (e.continuation.length === 0)
      throw new InputError(`${where}: encodes to no tokens of its own after the context`);
    if (e.continuation.length > o.seqLen)
      throw new InputError(`${where}: ${e.continuation.length} tokens, longer than the window (--seq-len ${o.seqLen})`);
    return pairRequest(e.context, e.continuation, o.seqLen);
  });
}

/** Accuracy and length-normalized accuracy over the questions. */
export async function taskAccuracy(
  c: ModelConfig,
  p: ModelParams,
  tok: Tokenizer,
  special: ScoringTokens,
  questions: Question[],
  o: TaskEvalOpts,
): Promise<TaskResult> {
  // every question encoded first: a choice that cannot be scored fails before the model runs
  const reqs = questions.map((q) => choiceRequests(tok, special, q, o));
  let hits = 0,
    hitsNorm = 0;
  // a few batches' worth at a time, so progress and --per-item lines come as it goes
  const chunk = Math.max(1, Math.floor((4 * o.batchSize) / Math.max(1, questions[0]!.choices.length)));
  for (let q0 = 0; q0 < questions.length; q0 += chunk) {
    const part = questions.slice(q0, q0 + chunk);
    const scored = await scoreRequests(c, p, reqs.slice(q0, q0 + chunk).flat(), o.batchSize);
    let at = 0;
    for (const q of part) {
      const ll = q.choices.map(() => scored[at++]!.logprob);
      const pred = argmax(ll);
      const predNorm = argmax(ll.map((x, i) => x / [...q.choices[i]!].length));
      hits += +(pred === q.answer);
      hitsNorm += +(predNorm === q.answer);
      o.onQuestion?.({ question: q, loglikelihoods: ll, pred, predNorm });
    }
    o.onProgress?.(q0 + part.length);
  }
  const n = questions.length;
  return {
    n,
    acc: hits / n,
    acc_stderr: stderr(hits, n),
    acc_norm: hitsNorm / n,
    acc_norm_stderr: stderr(hitsNorm, n),
  };
}
