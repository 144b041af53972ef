"""Regenerate the tiny CLIP BPE vocabulary shipped in maskattn_trt/models/vocab/.

The vocabulary holds CLIP's 256 byte symbols (with and without the end-of-word marker), whole-word tokens
for a list of common caption words, and the merges that build them, so prompts used in tests and the demo
tokenize into whole words while any text still tokenizes (falling back to characters).

    python tools/make_vocab.py
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = """
a an the of and with on in at to from by for near under over behind beside next above below between
is are sitting standing lying walking running flying holding wearing eating riding playing looking
cat cats dog dogs bird birds horse horses cow sheep elephant giraffe zebra bear teddy fish duck
man woman men women person people boy girl child children baby player players skier surfer
car cars bus truck train bicycle bike motorcycle boat airplane plane kite skateboard surfboard
table chair bench couch bed desk window door wall floor room kitchen bathroom street road sidewalk
field grass tree trees sky cloud clouds sun moon water sea ocean beach river lake snow mountain
house building city park garden forest hill sand rock road fence sign clock tower bridge
red blue green yellow white black brown orange purple pink gray grey golden silver dark bright
big small large little tall short old young two three four many some several other
pizza cake sandwich banana apple orange broccoli carrot hot dog donut bowl cup plate bottle glass
laptop phone keyboard mouse television tv book vase umbrella bag hat shirt jacket tie glasses
photo picture painting portrait image view close up front back side top bottom left right
astronaut robot castle dragon cyberpunk watercolor oil sunset sunrise night day morning evening
beautiful cute happy sad fluffy shiny wooden metal stone glass futuristic ancient cozy
very highly detailed realistic style art render lighting 4k 8k cinematic
""".split()

SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def bytes_to_unicode() -> dict[int, str]:
    """CLIP / GPT-2's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def main() -> None:
    base = list(bytes_to_unicode().values())
    vocab: list[str] = base + [c + "</w>" for c in base]
    # A small BPE training run over the word list: merging the most frequent pair each round until every
    # word is one symbol gives merges whose rank order reproduces those whole words when applied.
    words = [list(w[:-1]) + [w[-1] + "</w>"] for w in dict.fromkeys(w.lower() for w in WORDS)]
    merges: list[tuple[str, str]] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for symbols in words:
            for pair in zip(symbols, symbols[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda pair: (counts[pair], pair))
        merges.append(best)
        merged = best[0] + best[1]
        if merged not in vocab:
            vocab.append(merged)
        for i, symbols in enumerate(words):
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    out.append(merged)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[i] = out
    vocab += SPECIAL
    out = Path(__file__).resolve().parent.parent / "maskattn_trt" / "models" / "vocab"
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out}")


if __name__ == "__main__":
    main()
