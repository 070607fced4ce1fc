"""Findings a notebook states, made from the numbers of the run that shows them.

A `Finding` is one claim (its kind, what it is about, which claim), the sentence a reader sees and
the numbers behind it. The claim and the sentence are computed from the numbers, never typed, so a
different result shows a different sentence:

- ``depth`` (`depth_finding`): a probe sweep against a baseline (the input's bag of codes, or the
  prompt's text): ``deeper_than_baseline`` when the best layer's accuracy is at least `DEPTH_BAR`
  above the baseline's and its margin over the stronger of chance and the shuffled-label control is
  at least `MARGIN_BAR`; ``not_deeper`` when a layer reads the concept but not that far above the
  baseline; ``not_read`` when no layer clears the margin bar;
- ``layers`` (`layers_finding`): at how many layers a sweep reads the concept (margin >= `MARGIN_BAR`):
  ``every_layer``, ``some_layers`` or ``no_layer``;
- ``verdict`` (`verdict_finding`): a steering verdict of `workbench.analysis.evaluation.verdicts`
  against its random directions: ``beyond_random`` only when ``p_value < ALPHA``,
  ``order_rate >= MIN_ORDER_RATE``, ``collapsed_share <= MAX_COLLAPSED_SHARE`` and, where the verdict
  carries them, ``buzzing_share <= MAX_BUZZING_SHARE`` and ``level_only_effect <= MAX_LEVEL_ONLY_FRACTION x
  effect``, else ``not_beyond_random``; the sentence is `verdict_sentence`'s.

A notebook shows a finding by evaluating it (its text is the sentence; its output bundle also carries
the record under `MIME`). `check` recomputes the claim and the sentence from the printed numbers with
this module's bars, and `check_notebook` does it for every finding in an executed notebook's outputs
(tests/test_notebooks.py), so a claim its numbers do not back fails the notebook test.

    >>> row = dict(by_layer={0: 0.55, 1: 0.9}, by_layer_margin={0: 0.05, 1: 0.4}, best=0.9, best_layer=1,
    ...            chance=0.5, control=0.5, margin=0.4, input_baseline=0.5, input_margin=0.0,
    ...            folds=5, grouping="seed")
    >>> finding = depth_finding("dynamics", row)
    >>> finding.claim, check(finding)
    ('deeper_than_baseline', [])
    >>> forged = Finding.from_record(dict(finding.record(), claim="not_read"))
    >>> check(forged)
    ["depth 'dynamics': claims 'not_read', its numbers say 'deeper_than_baseline'"]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from workbench.analysis.evaluation.verdicts import (
    ALPHA,
    MAX_BUZZING_SHARE,
    MAX_COLLAPSED_SHARE,
    MAX_LEVEL_ONLY_FRACTION,
    MIN_ORDER_RATE,
    VERDICT_KEYS,
    verdict_sentence,
)
from workbench.analysis.teaching.concepts import PROFILE_BARS
from workbench.errors import BadInputError

__all__ = ["DEPTH_BAR", "MARGIN_BAR", "MIME", "PREFIX", "Finding", "check", "check_notebook", "depth_finding",
           "depth_sentence", "findings_in", "layers_finding", "verdict_finding"]

# the depth bars of teaching model v2's probe profile (`workbench.analysis.teaching.concepts.PROFILE_BARS`): a layer
# must read a concept 0.20 above the baseline, and 0.20 above the stronger of chance and the control
DEPTH_BAR = PROFILE_BARS["depth"]
MARGIN_BAR = PROFILE_BARS["margin"]
MIME = "application/vnd.workbench.finding+json"
PREFIX = "FINDING: "   # a finding printed as text: this, then its record as JSON on one line
_TOL = 1e-6
BASELINE_NAMES = {"input": "input baseline (a bag of codes)", "prompt": "prompt baseline (text only)"}


@dataclass(frozen=True)
class Finding:
    """One computed claim: ``kind`` (depth / layers / verdict), ``subject``, ``claim``, ``sentence``, ``numbers``."""

    kind: str
    subject: str
    claim: str
    sentence: str
    numbers: dict = field(default_factory=dict)

    def record(self) -> dict:
        return dict(kind=self.kind, subject=self.subject, claim=self.claim, sentence=self.sentence,
                    numbers=self.numbers)

    def line(self) -> str:
        """The finding as one line of text: `PREFIX` and its record as JSON."""
        return PREFIX + json.dumps(self.record(), sort_keys=True)

    @classmethod
    def from_record(cls, record: dict) -> Finding:
        missing = {"kind", "subject", "claim", "sentence", "numbers"} - set(record)
        if missing:
            raise BadInputError(f"a finding record lacks {sorted(missing)}: print it with Finding.line()")
        return cls(record["kind"], record["subject"], record["claim"], record["sentence"], dict(record["numbers"]))

    def __str__(self) -> str:
        return self.sentence

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.sentence, MIME: self.record()}


def _plain(numbers: dict) -> dict:
    """The numbers as the printed JSON gives them back (str keys, lists), so a sentence is made once."""
    return json.loads(json.dumps(numbers))


# ---------------------------------------------------------------------------------- probe sweeps
def _sweep_row(result, baseline: str | None, site: str | None = None) -> dict:
    """A probe-profile-like row from a `SweepResult` (one site's layer rows, and one baseline's row)."""
    sites = sorted({r["site"] for r in result.layer_rows})
    if site is None and len(sites) > 1:
        raise BadInputError(f"this sweep has the sites {sites}: pass site=... (e.g. site={sites[0]!r})")
    layers = [r for r in result.layer_rows if site is None or r["site"] == site]
    if not layers:
        raise BadInputError(f"this sweep has no site {site!r}: it has {sites}")
    best = max(layers, key=lambda r: r["accuracy_mean"])
    row = dict(by_layer={int(r["layer"]): float(r["accuracy_mean"]) for r in layers},
               by_layer_margin={int(r["layer"]): float(r["margin"]) for r in layers},
               best=float(best["accuracy_mean"]), best_layer=int(best["layer"]), chance=float(best["chance"]),
               control=float(best.get("control_accuracy_mean", best["chance"])), margin=float(best["margin"]),
               folds=result.folds, grouping=result.grouping)
    if baseline is not None:
        base = result.baseline(baseline)
        row.update(baseline=baseline, baseline_accuracy=float(base["accuracy_mean"]),
                   baseline_margin=float(base["margin"]))
    return row


def _depth_numbers(source, baseline: str, site: str | None = None) -> dict:
    if hasattr(source, "layer_rows"):
        return _plain(_sweep_row(source, baseline, site))
    row = dict(source)   # a `probe_profile` row: its baseline is the input
    if "baseline_accuracy" not in row:
        row.update(baseline="input", baseline_accuracy=row.pop("input_baseline"),
                   baseline_margin=row.pop("input_margin", float("nan")))
    keep = ("by_layer", "by_layer_margin", "best", "best_layer", "chance", "control", "margin", "folds", "grouping",
            "baseline", "baseline_accuracy", "baseline_margin")
    return _plain({k: row[k] for k in keep if k in row})


def _layers_read(numbers: dict) -> tuple[int, int]:
    margins = list(numbers["by_layer_margin"].values())
    return sum(m >= MARGIN_BAR for m in margins), len(margins)


def _folds_text(numbers: dict) -> str:
    grouping = numbers.get("grouping") or "rows"
    grouped = "each row its own group" if grouping in ("rows", "given") else f"grouped by {grouping}"
    return f"{numbers.get('folds')} folds, {grouped}"


def depth_claim(numbers: dict) -> str:
    if numbers["margin"] < MARGIN_BAR:
        return "not_read"
    if numbers["best"] - numbers["baseline_accuracy"] >= DEPTH_BAR:
        return "deeper_than_baseline"
    return "not_deeper"


def depth_sentence(concept: str, numbers: dict) -> str:
    """The sentence of a depth finding, from its numbers (a `probe_profile` row, or `depth_finding`'s)."""
    numbers = _depth_numbers(numbers, "input") if "baseline_accuracy" not in numbers else numbers
    claim = depth_claim(numbers)
    base_name = BASELINE_NAMES.get(numbers["baseline"], f"{numbers['baseline']} baseline")
    gain = numbers["best"] - numbers["baseline_accuracy"]
    read, n = _layers_read(numbers)
    layer = (f"layer {numbers['best_layer']} reads it at {numbers['best']:.2f} ({numbers['margin']:+.2f} over the "
             f"stronger of chance {numbers['chance']:.2f} and the shuffled-label control {numbers['control']:.2f})")
    base = f"the {numbers['baseline']} baseline at {numbers['baseline_accuracy']:.2f}"
    tail = f" [{_folds_text(numbers)}; {read} of {n} layers clear the {MARGIN_BAR:.2f} margin]"
    if claim == "deeper_than_baseline":
        return (f"{concept}: read deeper than the {base_name}: {layer}, {base} ({gain:+.2f}, bar "
                f"{DEPTH_BAR:+.2f}).{tail}")
    if claim == "not_deeper":
        return (f"{concept}: not deeper than the {base_name}: {layer}; {base} ({gain:+.2f}, under the "
                f"{DEPTH_BAR:+.2f} bar).{tail}")
    return (f"{concept}: no layer reads it beyond chance and the shuffled-label control: the best, "
            f"{layer}, is under the {MARGIN_BAR:.2f} margin bar; {base}.{tail}")


def depth_finding(concept: str, source, baseline: str = "input", site: str | None = None) -> Finding:
    """Is `concept` read deeper than a baseline? source: a `SweepResult` fitted with ``baselines=``
    (its `baseline` row is the comparison; site: which site's layers, when it swept several), or a
    `workbench.analysis.teaching.concepts.probe_profile` row."""
    numbers = _depth_numbers(source, baseline, site)
    return Finding("depth", concept, depth_claim(numbers), depth_sentence(concept, numbers), numbers)


def layers_claim(numbers: dict) -> str:
    read, n = _layers_read(numbers)
    return "every_layer" if read == n else "some_layers" if read else "no_layer"


def layers_sentence(concept: str, numbers: dict) -> str:
    read, n = _layers_read(numbers)
    margins = numbers["by_layer_margin"]
    where = {"every_layer": "at every layer", "some_layers": f"at {read} of {n} layers ("
             + ", ".join(k for k, m in margins.items() if m >= MARGIN_BAR) + ")",
             "no_layer": "at no layer"}[layers_claim(numbers)]
    return (f"{concept}: read beyond chance ({numbers['chance']:.2f}) and the shuffled-label control {where}: "
            f"margins {min(margins.values()):+.2f} to {max(margins.values()):+.2f} (bar {MARGIN_BAR:.2f}), best "
            f"layer {numbers['best_layer']} at {numbers['best']:.2f} [{_folds_text(numbers)}].")


def layers_finding(concept: str, result, site: str | None = None) -> Finding:
    """At which layers a `SweepResult` reads `concept` beyond the stronger of chance and its control."""
    numbers = _plain(_sweep_row(result, None, site))
    return Finding("layers", concept, layers_claim(numbers), layers_sentence(concept, numbers), numbers)


# ---------------------------------------------------------------------------------- steering verdicts
_OPTIONAL_VERDICT_KEYS = ("buzzing_share", "level_only_effect")  # bars a verdict carries when it measured them


def _level_explains(numbers: dict) -> bool:
    """True when the verdict's level-only control explains more than `MAX_LEVEL_ONLY_FRACTION` of its effect
    (as `verdict_sentence` reads it; a verdict without a finite ``level_only_effect`` has no such control)."""
    level_only = numbers.get("level_only_effect")
    return (level_only is not None and math.isfinite(level_only)
            and level_only > MAX_LEVEL_ONLY_FRACTION * numbers["effect"])


def verdict_claim(numbers: dict) -> str:
    beyond = (numbers["p_value"] < ALPHA and numbers["order_rate"] >= MIN_ORDER_RATE
              and numbers["collapsed_share"] <= MAX_COLLAPSED_SHARE
              and numbers.get("buzzing_share", 0.0) <= MAX_BUZZING_SHARE
              and not _level_explains(numbers))
    return "beyond_random" if beyond else "not_beyond_random"


def verdict_finding(concept: str, target: str, verdict: dict, unit: str = "") -> Finding:
    """A steering verdict (`SteeringEffect.verdict[target]`) as a finding; its sentence is `verdict_sentence`'s."""
    missing = set(VERDICT_KEYS) - set(verdict)
    if missing:
        raise BadInputError(f"the verdict toward {target!r} lacks {sorted(missing)}: pass "
                            f"SteeringEffect.verdict[target]")
    kept = {k: verdict[k] for k in (*VERDICT_KEYS, *_OPTIONAL_VERDICT_KEYS) if k in verdict}
    numbers = _plain(dict(kept, concept=concept, target=target, unit=unit))
    return Finding("verdict", f"{concept} -> {target}", verdict_claim(numbers),
                   verdict_sentence(concept, target, numbers, unit), numbers)


# ---------------------------------------------------------------------------------- checking
def _close(a, b) -> bool:
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=_TOL))


def _consistent(finding: Finding) -> list[str]:
    """Numbers that contradict each other (a best that is not the best layer's, a margin off its parts...)."""
    n, out = finding.numbers, []
    if finding.kind in ("depth", "layers"):
        by_layer = {str(k): v for k, v in n["by_layer"].items()}
        if not _close(n["best"], max(by_layer.values())) or not _close(by_layer.get(str(n["best_layer"])), n["best"]):
            out.append(f"best {n['best']} at layer {n['best_layer']} is not the best of by_layer {by_layer}")
        if not _close(n["margin"], n["best"] - max(n["chance"], n["control"])):
            out.append(f"margin {n['margin']} is not best - max(chance, control)")
        margins = {str(k): v for k, v in n["by_layer_margin"].items()}
        if not _close(margins.get(str(n["best_layer"])), n["margin"]):
            out.append(f"margin {n['margin']} is not the best layer's by_layer_margin")
    if finding.kind == "verdict" and "beyond_random" in n and bool(n["beyond_random"]) != (
            verdict_claim(n) == "beyond_random"):
        out.append(f"its verdict says beyond_random={n['beyond_random']}, its numbers say {verdict_claim(n)!r}")
    return out


def check(finding: Finding) -> list[str]:
    """What is wrong with a finding: a claim or a sentence its numbers do not give ([] when backed)."""
    where = f"{finding.kind} {finding.subject!r}"
    try:
        if finding.kind == "depth":
            claim, sentence = depth_claim(finding.numbers), depth_sentence(finding.subject, finding.numbers)
        elif finding.kind == "layers":
            claim, sentence = layers_claim(finding.numbers), layers_sentence(finding.subject, finding.numbers)
        elif finding.kind == "verdict":
            n = finding.numbers
            claim, sentence = verdict_claim(n), verdict_sentence(n["concept"], n["target"], n, n.get("unit", ""))
        else:
            return [f"{where}: unknown kind (depth, layers or verdict)"]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"{where}: its numbers cannot back a claim ({type(err).__name__}: {err})"]
    problems = [f"{where}: {p}" for p in _consistent(finding)]
    if finding.claim != claim:
        problems.append(f"{where}: claims {finding.claim!r}, its numbers say {claim!r}")
    if finding.sentence != sentence:
        problems.append(f"{where}: the sentence is not the one its numbers give:\n  shown: {finding.sentence}\n"
                        f"  numbers: {sentence}")
    return problems


def findings_in(nb) -> list[Finding]:
    """Every finding in an executed notebook's outputs (the `MIME` bundles and `PREFIX` lines)."""
    found = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            if MIME in data:
                record = data[MIME]
                found.append(Finding.from_record(json.loads(record) if isinstance(record, str) else record))
            text = out.get("text", "")   # printed lines (a stream output)
            for line in ("".join(text) if isinstance(text, list) else text).splitlines():
                if line.startswith(PREFIX):
                    found.append(Finding.from_record(json.loads(line[len(PREFIX):])))
    return found


def check_notebook(nb) -> tuple[list[Finding], list[str]]:
    """(the findings an executed notebook shows, what is wrong with them)."""
    try:
        found = findings_in(nb)
    except (ValueError, BadInputError) as err:
        return [], [f"a finding could not be read back: {err}"]
    return found, [p for f in found for p in check(f)]
