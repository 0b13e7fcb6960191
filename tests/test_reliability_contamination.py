"""slmlab.evaluate.reliability (ECE, reliability table) and slmlab.evaluate.contamination
(n-gram overlap), on hand-computed cases."""

import math

import pytest

from slmlab.evaluate import contamination as C
from slmlab.evaluate import reliability as R


def test_option_probabilities_are_a_softmax():
    p = R.option_probabilities([[math.log(1), math.log(3)], [0.0, 0.0, 0.0, 0.0]])
    assert p[0] == pytest.approx([0.25, 0.75]) and p[1] == pytest.approx([0.25] * 4)
    # shifting all log-likelihoods changes nothing (and large values do not overflow)
    assert R.option_probabilities([[1000.0, 1000.0 + math.log(3)]])[0] == pytest.approx(p[0])


def test_ece_hand_computed():
    # bin [0.6, 0.7): confidences 0.6, 0.6, right 1 of 2 -> gap |0.5 - 0.6| = 0.1, weight 2/4
    # bin [0.9, 1.0]: confidences 0.9, 1.0, right 2 of 2 -> gap |1 - 0.95| = 0.05, weight 2/4
    conf, ok = [0.6, 0.6, 0.9, 1.0], [1, 0, 1, 1]
    assert R.expected_calibration_error(conf, ok) == pytest.approx(0.5 * 0.1 + 0.5 * 0.05)
    table = R.reliability_table(conf, ok)
    assert [(r["low"], r["count"]) for r in table] == [(0.6, 2), (0.9, 2)]
    assert table[1]["confidence"] == pytest.approx(0.95) and table[1]["accuracy"] == 1.0


def test_perfectly_calibrated_and_overconfident():
    # 100 answers at confidence 0.7, 70 right: calibrated, ECE 0
    assert R.expected_calibration_error([0.7] * 100, [1] * 70 + [0] * 30) == pytest.approx(0)
    # always sure, right half the time: ECE 0.5
    assert R.expected_calibration_error([1.0] * 10, [1, 0] * 5) == pytest.approx(0.5)
    # one bin: ECE is |mean confidence - accuracy|
    assert R.expected_calibration_error([0.2, 0.9], [1, 1], n_bins=1) == pytest.approx(0.45)


def test_calibration_of_a_multiple_choice_result():
    items = [{"label": 0}, {"label": 1}]
    result = {"loglikelihoods": [[0.0, math.log(1 / 3)], [0.0, -10.0]], "pred": [0, 0]}
    out = R.calibration(result, items)
    assert out["confidences"] == pytest.approx([0.75, 1 / (1 + math.exp(-10))])
    assert out["correct"] == [True, False]
    assert out["ece"] == pytest.approx(0.5 * abs(1 - 0.75) + 0.5 * out["confidences"][1])


def test_calibration_bad_input():
    with pytest.raises(ValueError, match="one confidence per outcome"):
        R.expected_calibration_error([0.5], [1, 0])
    with pytest.raises(ValueError, match="no answers"):
        R.expected_calibration_error([], [])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        R.expected_calibration_error([1.5], [1])
    with pytest.raises(ValueError, match="at least 2"):
        R.option_probabilities([[0.0]])
    with pytest.raises(ValueError, match="items"):
        R.calibration({"loglikelihoods": [[0.0, 0.0]], "pred": [0]})


def test_ngram_overlap_finds_a_copied_item():
    corpus = ["Tom had a red ball. He kicked the ball over the fence and ran after it."]
    items = [
        "He kicked the ball over the fence!",  # 7 words, all in the corpus (punctuation ignored)
        "She kicked a green ball under the table.",
        "short",
    ]
    out = C.overlap(items, corpus, n=5)
    assert out["contaminated"] == [True, False, False] and out["rate"] == pytest.approx(1 / 3)
    assert out["shared"][0] == 1.0 and out["shared"][2] == 0.0
    # n-grams do not cross documents
    assert not C.overlap(["ball he kicked"], ["a ball", "he kicked"], n=3)["contaminated"][0]
    # the corpus n-grams can be computed once and reused
    grams = C.corpus_ngrams(corpus, 5)
    assert C.overlap(items, grams, n=5)["contaminated"] == out["contaminated"]


def test_item_text_of_probe_items():
    mc = {"context": "The cup was made of", "options": [" glass.", " wood."], "label": 0}
    assert C.item_text(mc) == "The cup was made of glass."
    assert C.item_text({"prompt": "Problem: 2 + 2\n", "answer": "4"}) == "Problem: 2 + 2\n 4"
    with pytest.raises(ValueError, match="context/options/label"):
        C.item_text({"question": "?"})
    with pytest.raises(ValueError, match="no items"):
        C.overlap([], "text")
    with pytest.raises(ValueError, match="n must be"):
        C.overlap(["a b"], "a b", n=0)
