"""Write data/samples/synthetic_pairs.tsv: a small, hand-written, SYNTHETIC sentence-pair sample for tests.

    .venv/bin/python data/samples/make_synthetic_pairs.py

Each premise below comes with one hypothesis it entails and one it does not, giving 60 rows
(header ``sentence1<TAB>sentence2<TAB>label``). No randomness: the output is byte-identical on every run.
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "synthetic_pairs.tsv"

# (premise, entailed hypothesis, non-entailed hypothesis)
PAIRS = [
    (
        "Maria ordered a croissant and a latte at the small café on Elm Street.",
        "Maria ordered something at a café.",
        "Maria ordered a bowl of soup at the café.",
    ),
    (
        "The naïve intern believed every rumour he heard during his first week.",
        "The intern believed the rumours he heard.",
        "The intern doubted every rumour he heard.",
    ),
    (
        "Chloé sent her résumé to three publishing houses in Montréal last spring.",
        "Chloé applied to publishing houses in Montréal.",
        "Chloé sent her résumé to a bank in Paris.",
    ),
    (
        "The old theatre's façade was restored, but the interior still needs work.",
        "The theatre's façade has been restored.",
        "The interior of the theatre is fully restored.",
    ),
    (
        "After dinner, we shared a crème brûlée and two cups of strong coffee.",
        "We ate dessert after dinner.",
        "We skipped dessert and went straight home.",
    ),
    (
        "Zoë and her fiancé are planning a quiet wedding by the lake in June.",
        "Zoë is engaged to be married.",
        "Zoë and her fiancé are planning a large city wedding.",
    ),
    (
        "The children broke open the piñata, and sweets spilled across the lawn!",
        "The piñata was broken open by the children.",
        "The children never managed to break the piñata.",
    ),
    (
        "Walking into the room, Tom had a strong feeling of déjà vu.",
        "Tom felt he had experienced the moment before.",
        "Tom felt completely calm and unsurprised in the room.",
    ),
    (
        "The chef added sliced jalapeños to the tacos, which made them very spicy.",
        "The tacos were quite spicy.",
        "The tacos were mild and sweet.",
    ),
    (
        "Our flight to São Paulo was delayed by four hours because of a storm.",
        "The flight to São Paulo was late.",
        "The flight to São Paulo left early.",
    ),
    (
        "Mr. Müller teaches physics at the local school; his students adore him.",
        "Mr. Müller is a teacher.",
        "Mr. Müller teaches history at a university.",
    ),
    (
        "The museum's new exhibit features paintings by Renoir, Monet and Cézanne.",
        "The exhibit includes a painting by Monet.",
        "The exhibit is devoted entirely to modern sculpture.",
    ),
    (
        "She read the entire novel in one sitting — she couldn't put it down.",
        "She finished the novel in one sitting.",
        "She gave up on the novel after one chapter.",
    ),
    (
        "Because the road was icy, the bus moved slowly through the village.",
        "The bus drove slowly through the village.",
        "The bus raced through the village at high speed.",
    ),
    (
        "Is it true that the library closes at noon on Saturdays? Yes, it is.",
        "The library closes at noon on Saturdays.",
        "The library stays open late on Saturdays.",
    ),
    (
        "The soufflé collapsed the moment the oven door was opened.",
        "The soufflé fell when the oven was opened.",
        "The soufflé stayed perfectly tall after baking.",
    ),
    (
        "José planted tomatoes, basil and peppers in his backyard garden this year.",
        "José grows basil in his garden.",
        "José planted only roses this year.",
    ),
    (
        "The committee approved the budget, although two members voted against it.",
        "The budget was approved by the committee.",
        "Every committee member voted for the budget.",
    ),
    (
        "Renée plays the cello in a string quartet every Thursday evening.",
        "Renée is a musician who plays the cello.",
        "Renée plays the trumpet in a jazz band.",
    ),
    (
        "The hikers reached the summit at dawn and watched the sun rise.",
        "The hikers saw the sunrise from the summit.",
        "The hikers turned back before reaching the summit.",
    ),
    (
        "Despite the rain, thousands of fans attended the open-air concert.",
        "Many fans went to the concert.",
        "The concert was cancelled because of the rain.",
    ),
    (
        "The doctor said Anna's cough was mild and would pass within a week.",
        "Anna's cough is not serious.",
        "The doctor said Anna needed surgery right away.",
    ),
    (
        "At the bakery, Frédéric bought two baguettes and a small apple tart.",
        "Frédéric bought bread at the bakery.",
        "Frédéric left the bakery without buying anything.",
    ),
    (
        "The printer jammed again, so Lee copied the report by hand.",
        "The printer was not working properly.",
        "The printer worked perfectly all day.",
    ),
    (
        "Our neighbours adopted a rescue dog named Biscuit last month.",
        "The neighbours have a dog.",
        "The neighbours adopted a cat named Biscuit.",
    ),
    (
        "The café's naïve mural, painted by local pupils, brightens the whole street.",
        "Local pupils painted the café's mural.",
        "A famous artist painted the café's mural.",
    ),
    (
        "The train was crowded, yet Priya found a seat by the window.",
        "Priya found a seat on the train.",
        "Priya had to stand for the whole journey.",
    ),
    (
        "Grandpa's recipe calls for three eggs, a cup of flour and some butter.",
        "The recipe uses some eggs.",
        "The recipe contains no eggs at all.",
    ),
    (
        "The startup hired twelve engineers after raising money from investors.",
        "The startup hired new engineers.",
        "The startup laid off all of its engineers.",
    ),
    (
        "Noëlle forgot her umbrella, so she got soaked on the way home.",
        "Noëlle got wet on her way home.",
        "Noëlle stayed dry because she had an umbrella.",
    ),
]


def main() -> None:
    lines = ["sentence1\tsentence2\tlabel"]
    for premise, yes, no in PAIRS:
        for hypothesis, label in ((yes, "entailment"), (no, "not_entailment")):
            for sentence in (premise, hypothesis):
                assert "\t" not in sentence and "\n" not in sentence, sentence
                assert 5 <= len(sentence.split()) <= 20, sentence
            lines.append(f"{premise}\t{hypothesis}\t{label}")
    OUT.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {len(lines) - 1} rows to {OUT}")


if __name__ == "__main__":
    main()
