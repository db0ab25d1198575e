"""The figure helpers every report shares: robust axes, error bars, short event labels,
and the report-side rules built on them (KL singular shares, the summary's medians)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regulas.cli import _file_label
from regulas.reports.figures import clip_note, mark_outside, mean_sd, pyplot, robust_limits, short_label
from regulas.workloads.regnet.reports import KL_SINGULAR, split_kl
from regulas.workloads.splicing.reports.summary import summary_frame, summary_lines


def test_robust_limits_cut_far_outliers_and_count_them() -> None:
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0.1, 0.2, 998), -8_700.0, -11_500.0, np.nan, np.inf]
    clip = robust_limits(values)
    assert clip.below == 2 and clip.above == 0 and clip.outside == 2
    assert clip.nonfinite == 2 and clip.n == values.size
    assert -2.0 < clip.low < values[:998].min() and clip.high > values[:998].max()  # the bulk is whole
    assert clip.minimum == -11_500.0
    assert clip.count(values) == (2, 0)
    note = clip_note(clip, "events")
    assert note.startswith("2 below") and "-11,500" in note and "of 1000 events" in note


def test_robust_limits_keep_everything_when_nothing_is_extreme() -> None:
    values = np.random.default_rng(1).normal(size=500)
    clip = robust_limits(values)
    assert clip.outside == 0 and clip_note(clip) == ""
    assert clip.low < values.min() and clip.high > values.max()


def test_robust_limits_bounds_and_reference_values() -> None:
    # R² distribution whose 1st percentile is far below -1: the axis stops at the bound
    r2 = np.r_[np.linspace(-0.5, 0.5, 90), np.linspace(-50.0, -2.0, 10)]
    clip = robust_limits(r2, bounds=(-1.0, 1.0), include=(0.0,))
    assert clip.low == -1.0 and clip.below == 10 and clip.high <= 1.0
    # values all above 0 still show the reference 0
    assert robust_limits([0.3, 0.4, 0.5], include=(0.0,)).low < 0.0


def test_robust_limits_on_a_log_axis_are_finite_and_positive() -> None:
    values = np.r_[np.geomspace(0.01, 1.0, 200), np.inf, 0.0, 1e16]
    clip = robust_limits(values, log=True)
    assert 0 < clip.low < 0.01 and math.isfinite(clip.high) and clip.high < 1e16
    assert clip.above == 1 and clip.nonfinite == 2  # inf and 0 cannot be drawn on a log axis
    empty = robust_limits([], log=True)
    assert 0 < empty.low < empty.high and math.isfinite(empty.high)


def test_mark_outside_sets_the_limits_and_marks_each_group() -> None:
    plt = pyplot()
    fig, ax = plt.subplots()
    groups = [np.r_[np.linspace(0, 1, 100), -100.0, -200.0], np.r_[np.linspace(0, 1, 100), 50.0]]
    clip = robust_limits(np.concatenate(groups))
    assert mark_outside(ax, [1, 2], groups, clip) == 3
    assert ax.get_ylim() == pytest.approx((clip.low, clip.high))
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2"]  # the count beside each edge marker
    plt.close(fig)


def test_mean_sd_is_undefined_for_one_value_not_zero() -> None:
    one = mean_sd([0.7, np.nan])
    assert one.mean == 0.7 and one.n == 1 and math.isnan(one.sd)
    two = mean_sd([1.0, 3.0])
    assert (two.mean, two.n) == (2.0, 2) and two.sd == pytest.approx(math.sqrt(2.0))  # sample sd, ddof=1
    none = mean_sd([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.sd)


def test_short_labels_are_short_and_distinct_for_distinct_events() -> None:
    events = [
        "ANAPC5:SE:chr12:121335609:121335533:121331428:121331347:121330672:121330583",
        "ANAPC5:SE:chr12:121335723:121335533:121331428:121331227:121330672:121330583",
        "AP4B1:MXE:chr1:113901383:113901236:113900400:113899904:113896038:113895757",
        "UBE2D3:A3SS:chr4:102827948:102827592:102826844:102826636:102826485",
    ]
    labels = [short_label(e, i) for i, e in enumerate(events)]
    assert labels == ["ANAPC5 SE #0", "ANAPC5 SE #1", "AP4B1 MXE #2", "UBE2D3 A3SS #3"]
    assert len(set(labels)) == len(events)
    assert short_label(events[0]) == "ANAPC5 SE"
    # IDs of another form: cut to the width, still distinct with their index
    long = ["x" * 60 + "a", "x" * 60 + "b"]
    cut = [short_label(e, i, width=20) for i, e in enumerate(long)]
    assert len(set(cut)) == 2 and all(len(c) <= 24 for c in cut)
    assert short_label("target00012") == "target00012"


def test_kl_split_counts_infinite_and_huge_values_as_singular() -> None:
    split = split_kl(np.array([0.1, 0.2, np.inf, 10 * KL_SINGULAR, np.nan, 0.3, 5.0, 1e16]))
    assert sorted(split.usable) == [0.1, 0.2, 0.3, 5.0]
    assert split.singular == pytest.approx(3 / 8) and split.nan == pytest.approx(1 / 8) and split.n == 8
    assert split.legend() == "38% singular, 12% NaN; n=8"
    assert split_kl(np.array([])).n == 0


def test_summary_states_medians_beside_means_and_explains_nan_r2() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for pipeline in ("A", "B"):
        for event in range(20):
            for split in range(3):
                r2 = -10_000.0 if (pipeline == "A" and event == 0) else rng.uniform(-0.2, 0.6)
                nan = event == 1 and split == 0
                rows.append((pipeline, event, rng.uniform(0, 0.1), np.nan if nan else r2, rng.uniform(), int(nan)))
    scores = pd.DataFrame(rows, columns=["pipeline", "event", "mse", "r2", "pearson", "r2_nan_flag"])
    frame = summary_frame(scores).set_index("pipeline")
    per_event = scores.groupby(["pipeline", "event"])["r2"].mean()
    for p in ("A", "B"):
        assert frame.loc[p, "median_r2"] == pytest.approx(per_event[p].median())
        assert frame.loc[p, "mean_r2"] == pytest.approx(per_event[p].mean())
        assert frame.loc[p, "r2_nan"] == 1 and frame.loc[p, "folds"] == 60 and frame.loc[p, "events"] == 20
    assert frame.loc["A", "mean_r2"] < -400 < 0 < frame.loc["A", "median_r2"]  # one event drags the mean only
    text = "\n".join(summary_lines(frame.reset_index()))
    assert "median R2" in text and "mean R2" in text
    assert "R2 NaN: test folds" in text and "constant" in text


@pytest.mark.parametrize(("name", "label"), [
    ("a/score_distribution.png", "figure"), ("b.SVG", "figure"), ("a/csv/MSE.csv", "report"), ("x.parquet", "report"),
])
def test_cli_labels_images_as_figures_and_other_files_as_reports(name: str, label: str) -> None:
    assert _file_label(Path(name)) == label
