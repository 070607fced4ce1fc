"""Probe verdicts that cannot leak (issue 26, item 8): folds grouped by what two rows can share, the
folds rule `min(folds, groups in the smallest class)`, and accuracy as a margin over chance and the control."""
import numpy as np
import pytest

from workbench.analysis.probes import LabelMismatchError, SweepConfig, TooFewGroupsError, TooFewSamplesError, sweep
from workbench.analysis.solvers import FoldPlan, fold_count, grouped_fold_ids, table_groups
from workbench.data.datasets import PromptSet, SynthSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def windows(n_clips=60, per_clip=6, d=96, jitter=0.05, seed=0):
    """Near-duplicate windows of clips whose labels are drawn per clip and carry no signal across clips."""
    rng = np.random.default_rng(seed)
    clip = np.repeat(np.arange(n_clips), per_clip)
    centres = rng.normal(size=(n_clips, d))
    X = (centres[clip] + jitter * rng.normal(size=(len(clip), d))).astype(np.float32)
    label = rng.permutation(np.arange(n_clips) % 2)[clip]
    return X, np.array(["calm", "busy"])[label], clip


def test_windows_of_one_clip_leak_through_row_wise_folds_and_not_through_grouped_ones():
    X, y, clip = windows()
    row_wise = sweep({("resid", 0): X}, y, groups=None)
    grouped = sweep({("resid", 0): X}, y, groups=clip)
    leaky, honest = row_wise.rows[0], grouped.rows[0]
    assert leaky["accuracy_mean"] > 0.95 and leaky["margin"] > 0.4  # the probe recognises clips, not labels
    assert abs(honest["accuracy_mean"] - honest["chance"]) < 0.15 and honest["margin"] < 0.15
    assert (row_wise.grouping, grouped.grouping, grouped.folds, grouped.n_groups) == ("rows", "given", 5, 60)
    assert "grouped by given (60 groups)" in repr(grouped)


def test_a_store_groups_by_the_source_clip_of_its_windows(tmp_path):
    from workbench.data.store import ActivationStore, StoreIdentity
    X, y, clip = windows(n_clips=30, d=48)
    store = ActivationStore.create(tmp_path / "s", StoreIdentity("m", spec_key="k", keys=[("resid", 0)]))
    rows = [dict(id=f"clip{c}/w{i}", label=str(lab), source=f"clip{c}", seed=0)  # every row seed 0: shares nothing
            for i, (c, lab) in enumerate(zip(clip, y))]
    store.append({("resid", 0): X}, rows, None, None)
    result = sweep(store)
    assert result.grouping == "source" and result.rows[0]["grouping"] == "source"
    assert result.rows[0]["accuracy_mean"] < 0.75
    assert sweep(store, groups=None).rows[0]["accuracy_mean"] > 0.95
    assert sweep(store, groups="source").rows == result.rows
    with pytest.raises(LabelMismatchError, match="no 'prompt'.*columns"):
        sweep(store, groups="prompt")


def test_no_group_is_in_both_a_training_and_a_test_fold():
    _, y, clip = windows(n_clips=23, per_clip=3)
    codes = np.unique(y, return_inverse=True)[1]
    plan = FoldPlan.make(codes, 5, seed=3, control=True, groups=clip)
    for g in np.unique(clip):
        assert len(set(plan.fold_of[clip == g])) == 1
    for k in range(plan.folds):  # stratified where the groups allow: every fold tests both classes
        assert set(codes[plan.fold_of == k]) == {0, 1}
    assert (grouped_fold_ids(codes, clip, 5, seed=3) == plan.fold_of).all()  # seeded
    # one group per row: exactly the row-wise folds of before
    rows = FoldPlan.make(codes, 5, seed=3, control=False, groups=np.arange(len(codes)))
    assert (rows.fold_of == FoldPlan.make(codes, 5, seed=3, control=False).fold_of).all()


def test_folds_are_min_of_five_and_the_groups_in_the_smallest_class():
    codes = np.array([0] * 12 + [1] * 6)
    assert fold_count(codes, np.r_[np.arange(12), np.repeat([20, 21, 22], 2)]) == 3
    assert fold_count(codes, None) == 5 and fold_count(codes, None, folds=4) == 4
    assert fold_count(codes, np.r_[np.arange(12) // 6, 10 + np.arange(6)]) == 2
    X, y, clip = windows(n_clips=8, per_clip=4, d=8)
    assert sweep({("resid", 0): X}, y, groups=clip).folds == 4  # 4 clips of each label
    assert sweep({("resid", 0): X}, y, groups=clip, config=SweepConfig(folds=3)).folds == 3


def test_too_few_groups_are_refused_with_the_fix(tmp_path):
    from workbench.data.store import ActivationStore, StoreIdentity
    codes = np.array([0] * 6 + [1] * 6)
    with pytest.raises(TooFewGroupsError, match="single group.*at least 2 groups per class.*groups=None"):
        fold_count(codes, np.r_[np.zeros(6), 1 + np.arange(6)], grouping="given")
    prompts = PromptSet(["jazz", "rock"], templates=["{label} music"], seeds=range(4))  # one prompt per label
    X = np.random.default_rng(0).normal(size=(len(prompts), 4)).astype(np.float32)
    store = ActivationStore.create(tmp_path / "s", StoreIdentity("m", spec_key="k", keys=[("resid", 0)]))
    store.append({("resid", 0): X}, prompts.rows, None, None)
    with pytest.raises(TooFewGroupsError, match="single prompt.*templates=.*or pass groups=None"):
        sweep(store)
    assert sweep(store, groups=None).folds == 4  # the explicit opt-out: folds may share a prompt
    assert issubclass(TooFewGroupsError, TooFewSamplesError)
    with pytest.raises(LabelMismatchError, match="one group per row"):
        sweep({("resid", 0): X}, prompts.labels(), groups=[0, 1])
    with pytest.raises(LabelMismatchError, match="names a column of an ActivationStore"):
        sweep({("resid", 0): X}, prompts.labels(), groups="prompt")


def test_a_store_table_groups_by_the_first_column_rows_share():
    prompts = PromptSet(["jazz", "rock"], templates=["{label} music", "a {label} song"], seeds=range(3))
    groups, column = table_groups(prompts.rows)
    assert column == "prompt" and len(set(groups)) == 4
    synth = SynthSet(["jazz", "rock"], n_per_genre=3, version=2)
    assert table_groups(synth.rows)[1] == "seed"  # one synthesiser seed per genre
    assert table_groups([dict(prompt=f"p{i}", seed=0) for i in range(6)]) == (None, "rows")  # nothing shared
    assert table_groups([dict(path=f"{i}.wav") for i in range(6)]) == (None, "rows")


def test_margin_is_over_the_stronger_of_chance_and_the_control_with_the_input_beside_it():
    X, y, clip = windows(n_clips=20, d=16)
    noise = np.random.default_rng(5).normal(size=X.shape).astype(np.float32)
    result = sweep({("resid", 0): X, ("resid", 1): noise}, y, baselines={"input": noise})
    for row in result.rows:
        assert row["margin"] == pytest.approx(row["accuracy_mean"] - max(row["chance"], row["control_accuracy_mean"]))
    for row in result.layer_rows:
        assert row["over_input"] == pytest.approx(row["accuracy_mean"] - result.baseline("input")["accuracy_mean"])
    assert "over_input" not in result.baseline("input")
    no_control = sweep({("resid", 0): X}, y, config=SweepConfig(control=False)).rows[0]
    assert no_control["margin"] == pytest.approx(no_control["accuracy_mean"] - no_control["chance"])


def test_the_depth_bar_needs_a_margin_over_chance_and_the_control():
    from workbench.analysis.teaching.concepts import concept_bars
    deep = dict(best=0.95, input_baseline=0.5, chance=0.5, margin=0.45)
    lopsided = dict(best=0.9, input_baseline=0.6, chance=0.88, margin=0.02)  # 0.9 where the majority class is 0.88
    older = dict(best=0.95, input_baseline=0.5, chance=0.5)  # a profile from before the margin: over chance
    bars = concept_bars({"probe_profile": {"dynamics": deep, "tempo": lopsided, "brightness": older}})
    assert bars["deep_concepts"] == ["dynamics", "brightness"] and bars["depth_bar_met"]
