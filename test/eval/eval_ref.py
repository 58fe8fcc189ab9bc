"""What `eval` must print for the fixture in fixtures/tiny-bytes, computed by the PyTorch reference
(test/reference/llama_ref.py) on token ids made here, independently of bunlm's code. The fixture's
tokenizer has no merges (ids 0..255 are the UTF-8 bytes, <|endoftext|> is 256 and is both its bos and
eos), so encoding is `list(text.encode())`.

  python3 eval_ref.py FIXTURE_DIR OUT.json

- text: lm-evaluation-harness's loglikelihood_rolling (lm_eval/utils.py get_rolling_token_windows with
  context_len 1, make_disjoint_window, then _loglikelihood_tokens' (context + continuation)[-(L+1):][:-1]),
  prefix token 256, one document at a time; bits per byte over the documents' UTF-8 bytes.
- shards: what `pack seq --seq-len L --doc-mask` writes from the same documents (each followed by
  <|endoftext|>, rows of L + 1 tokens overlapping by one, positions restarting after <|endoftext|>),
  every target scored; bytes are the non-special targets (one byte each).
- tasks: lm-eval's multiple_choice: _encode_pair (trailing whitespace of the context moves to the
  continuation), an empty context becomes the prefix token, acc = argmax of the summed log-probs,
  acc_norm = argmax of the sums divided by len(choice).

Regenerate with: bun test/eval/make_fixture.ts
"""
import json, math, os, sys
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
from llama_ref import load  # noqa: E402

PREFIX, EOS = 256, 256


def rolling_windows(tokens, prefix, L):
    pred_len, predicted = L, 0
    first = min(L, len(tokens))
    yield [prefix] + tokens[: first - 1], tokens[:first]
    predicted += first
    while predicted < len(tokens):
        k = min(len(tokens) - predicted, pred_len)
        end = predicted + k
        yield tokens[end - L - 1 : end - 1], tokens[end - k : end]
        predicted += k


def disjoint(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


@torch.no_grad()
def loglik(m, context, continuation, L, pos=None):
    """Σ log p(continuation | context), scored one request at a time (no batching, no padding)."""
    inp = (context + continuation)[-(L + 1) :][:-1]
    ids = torch.tensor([inp])
    p = torch.arange(len(inp))[None] if pos is None else torch.tensor([pos])
    logp = torch.log_softmax(m(ids, p)[0].double(), dim=-1)
    n = len(continuation)
    tail = logp[len(inp) - n :]
    return float(tail[torch.arange(n), torch.tensor(continuation)].sum())


def main(fixture, out):
    m = load(fixture)
    for w in m.w.values():
        w.requires_grad_(False)
    spec = json.load(open(os.path.join(fixture, "eval_inputs.json")))
    L = spec["seq_len"]
    docs = [json.loads(l)["text"] for l in open(os.path.join(fixture, "docs.jsonl")) if l.strip()]

    nll, tokens, nbytes, per_doc = 0.0, 0, 0, []
    for d in docs:
        toks = list(d.encode("utf-8"))
        dn = 0.0
        for ctx, cont in map(disjoint, rolling_windows(toks, PREFIX, L)):
            dn -= loglik(m, ctx, cont, L)
        nll += dn
        tokens += len(toks)
        nbytes += len(d.encode("utf-8"))
        per_doc.append({"tokens": len(toks), "nll": dn})
    text = {"tokens": tokens, "nll": nll, "loss": nll / tokens, "perplexity": math.exp(nll / tokens),
            "bytes": nbytes, "bits_per_byte": nll / (math.log(2) * nbytes), "documents": per_doc}

    S = spec["shard_seq_len"]
    stream = []
    for d in docs:
        stream += list(d.encode("utf-8")) + [EOS]
    snll, stok, sbytes, rows = 0.0, 0, 0, 0
    while len(stream) >= S + 1:
        row = stream[: S + 1]
        stream = stream[S:]
        pos = [0] * S
        for i in range(1, S):
            pos[i] = 0 if row[i - 1] == EOS else pos[i - 1] + 1
        with torch.no_grad():
            logp = torch.log_softmax(m(torch.tensor([row[:S]]), torch.tensor([pos]))[0].double(), dim=-1)
        snll -= float(logp[torch.arange(S), torch.tensor(row[1:])].sum())
        stok += S
        sbytes += sum(1 for t in row[1:] if t < 256)
        rows += 1
    shards = {"rows": rows, "tokens": stok, "nll": snll, "loss": snll / stok, "perplexity": math.exp(snll / stok),
              "bytes": sbytes, "bits_per_byte": snll / (math.log(2) * sbytes)}

    questions = [json.loads(l) for l in open(os.path.join(fixture, "tasks.jsonl")) if l.strip()]
    items, acc, acc_norm = [], 0, 0
    for q in questions:
        lls = []
        for choice in q["choices"]:
            context, continuation = q["context"], " " + choice
            if context == "":
                cont = list(continuation.encode())
                ctx, cont = ([PREFIX], cont) if cont[0] != PREFIX else (cont[:1], cont[1:])
            else:
                n_spaces = len(context) - len(context.rstrip())
                if n_spaces > 0:
                    continuation = context[-n_spaces:] + continuation
                    context = context[:-n_spaces]
                whole = list((context + continuation).encode())
                ctx = list(context.encode())
                cont = whole[len(ctx) :]
            lls.append(loglik(m, ctx, cont, L))
        lls = np.array(lls)
        pred = int(np.argmax(lls))
        pred_norm = int(np.argmax(lls / np.array([float(len(c)) for c in q["choices"]])))
        acc += pred == q["answer"]
        acc_norm += pred_norm == q["answer"]
        items.append({"loglikelihoods": lls.tolist(), "pred": pred, "pred_norm": pred_norm})
    n = len(questions)
    tasks = {"n": n, "acc": acc / n, "acc_norm": acc_norm / n, "questions": items}
    json.dump({"text": text, "shards": shards, "tasks": tasks}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
