"""slmlab.evaluate.stats: Wilson intervals, McNemar's exact test and the paired bootstrap,
against hand-computed values and scipy (the library twin)."""

import math

import pytest

from slmlab.evaluate import stats as S


def test_wilson_hand_computed():
    # 8 of 10: p = 0.8, z = 1.96; centre = (0.8 + 0.19208) / 1.38415, half = z*sqrt(.016 + .0096)/..
    lo, hi = S.wilson_interval(8, 10)
    z = S.Z95
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert lo == pytest.approx(centre - half, abs=1e-12) == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(centre + half, abs=1e-12) == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges_stay_inside_and_do_not_collapse():
    lo, hi = S.wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = S.wilson_interval(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.9
    # more items, a narrower interval
    w = [S.wilson_interval(n // 2, n) for n in (10, 100, 1000)]
    widths = [h - lo for lo, h in w]
    assert widths[0] > widths[1] > widths[2]


def test_wilson_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 5), (3, 7), (50, 100), (481, 500), (500, 500)]:
        for conf in (0.9, 0.95, 0.99):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
            lo, hi = S.wilson_interval(k, n, confidence=conf)
            assert lo == pytest.approx(ci.low, abs=1e-9)
            assert hi == pytest.approx(ci.high, abs=1e-9)


def test_mcnemar_hand_computed_and_scipy():
    assert S.mcnemar(0, 0) == 1.0
    assert S.mcnemar(0, 5) == pytest.approx(2 / 32)  # both tails of 5 fair coin flips
    assert S.mcnemar(3, 3) == 1.0
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(1, 9), (10, 30), (25, 25), (7, 0), (40, 61)]:
        assert S.mcnemar(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_paired_bootstrap_degenerate_and_shifted():
    same = [1, 0, 1, 1, 0] * 20
    assert S.paired_bootstrap(same, same) == (0.0, 0.0)
    worse = [0] * 100
    assert S.paired_bootstrap([1] * 100, worse) == (-1.0, -1.0)
    a = [1] * 60 + [0] * 40
    b = [1] * 40 + [0] * 60  # 20 items lost, none gained: difference -0.2
    lo, hi = S.paired_bootstrap(a, b, seed=1)
    assert lo <= -0.2 <= hi and hi < 0
    assert S.paired_bootstrap(a, b, seed=1) == (lo, hi)  # seeded


def test_paired_comparison_verdicts():
    a = [1] * 80 + [0] * 20
    lost = [1] * 50 + [0] * 50  # loses 30 items, gains none
    r = S.paired_comparison(a, lost)
    assert r["verdict"] == "lost" and r["only_a"] == 30 and r["only_b"] == 0
    assert r["difference"] == pytest.approx(-0.3) and r["p_value"] < 1e-6
    assert r["ci_low"] <= -0.3 <= r["ci_high"] < 0
    r = S.paired_comparison(lost, a)
    assert r["verdict"] == "gained"
    r = S.paired_comparison(a, a[::-1])  # same accuracy, items swapped: 20 vs 20
    assert r["verdict"] == "no evidence" and r["p_value"] == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="at least one item"):
        S.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="between 0 and n"):
        S.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        S.wilson_interval(1, 10, confidence=95)
    with pytest.raises(ValueError, match="same items"):
        S.paired_comparison([1, 0], [1])
    with pytest.raises(ValueError, match="no items"):
        S.paired_comparison([], [])
    with pytest.raises(ValueError, match="0/1"):
        S.paired_comparison([1, 2], [0, 1])
    with pytest.raises(ValueError, match=">= 0"):
        S.mcnemar(-1, 2)


def test_holm_hand_computed():
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept at 0.06 (step-down)
    assert S.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert S.holm([0.02]) == [0.02] and S.holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.holm([0.2, 1.5])
