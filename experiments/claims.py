"""A report's claims: each tested by one paired comparison, each verdict taken after Holm's correction.

Each finding is a `Claim`: the paper's claim, the paired comparison that tests it, and the paper's
direction. A report section returns its lines with the claims among them; `render` adjusts every claim's
p-value for the report's multiplicity (Holm, `stats.holm`) and only then writes each verdict:
reproduced when the paper's direction holds at Holm-adjusted p < 0.05, not reproduced when the opposite
does, inconclusive otherwise (and said so when a claim is significant alone but not after the
correction). Every verdict is about this study's data, which the report's header names.
"""
import dataclasses
import math
import os
from typing import Dict, List, Optional, Union

import numpy as np

from experiments import stats

SURVIVES = 0.05  # Holm-adjusted p below which a claim holds


def cell(summary: Optional[stats.Summary], digits: int) -> str:
    """A table cell: mean ± std over seeds (n)."""
    if summary is None:
        return "—"
    spread = "" if summary.n < 2 else f" ± {summary.std:.{digits}f}"
    return f"{summary.mean:.{digits}f}{spread} (n={summary.n})"


def describe(difference: Optional[stats.PairedDifference], digits: int = 4) -> str:
    return "not measured yet (no paired runs)" if difference is None else difference.describe(digits)


def paired(variant: Dict[int, float], baseline: Dict[int, float]) -> Optional[stats.PairedDifference]:
    return stats.paired_difference(variant, baseline) if set(variant) & set(baseline) else None


@dataclasses.dataclass
class Claim:
    """One claim of the paper, tested by one paired comparison; its verdict waits for the report's correction."""

    label: str                      # the verdict's markdown label, e.g. "**Verdict, Finding 3**"
    paper: str                      # the paper's claim, in words
    measured: str                   # what `difference` measures
    difference: Optional[stats.PairedDifference]
    direction: int                  # the sign the paper claims
    digits: int = 4
    adjusted_p: float = math.nan    # set by `render`

    @property
    def p(self) -> float:
        return self.difference.p if self.difference is not None and self.difference.n >= 2 else math.nan

    def verdict(self) -> str:
        if math.isnan(self.p):
            return "inconclusive (fewer than 2 paired seeds)"
        if self.adjusted_p < SURVIVES:
            if np.sign(self.difference.mean) == np.sign(self.direction):
                return "reproduced"
            return "not reproduced (significant in the opposite direction)"
        if self.difference.significant:
            return "inconclusive (significant alone, not after Holm's correction)"
        return "inconclusive (not significant)"

    def line(self) -> str:
        tested = "" if math.isnan(self.p) else f"; p = {self.p:.3g}, Holm-adjusted p = {self.adjusted_p:.3g}"
        return (f"{self.label} ({self.paper}): {self.measured}: {describe(self.difference, self.digits)}{tested}: "
                f"**{self.verdict()}**.")


Lines = List[Union[str, Claim]]


def render(lines: Lines, notes: Optional[Dict[str, str]] = None) -> List[str]:
    """The section's lines with every claim's verdict, corrected over all of them, and the correction's table.
    `notes` (the study's, by claim name as the correction's table names it) say why a result differs from the
    paper's; each follows its claim."""
    claims = [line for line in lines if isinstance(line, Claim)]
    notes = notes or {}
    unknown = sorted(set(notes) - {_name(c) for c in claims})
    if unknown:
        raise ValueError(f"the study's notes name {unknown}, which are not claims of this report; its claims: "
                         f"{[_name(c) for c in claims]}")
    for claim, adjusted in zip(claims, stats.holm([c.p for c in claims])):
        claim.adjusted_p = adjusted
    out = []
    for line in lines:
        out.append(line.line() if isinstance(line, Claim) else line)
        if isinstance(line, Claim) and _name(line) in notes:
            out.append(f"*Why it differs from the paper:* {notes[_name(line)]}")
    tested = [c for c in claims if not math.isnan(c.p)]
    out += [f"## Multiplicity: Holm's correction over this report's {len(tested)} tested claims", "",
            "The intervals in the tables are per comparison, uncorrected. Each verdict is taken at Holm-adjusted "
            f"p < {SURVIVES} over the report's claims, a correction that holds whatever their dependence: the "
            "comparisons at one β_pos all share that β_pos's baseline runs (the same seeds), so they are not "
            "independent. The intervals carry the seeds' variance; for test AUC, where every paired run kept its test "
            "scores, they add the test rows' sampling variance (DeLong's covariance of the runs' AUCs on the same "
            "rows), so a difference must stand out against both.",
            "", "| claim | paired Δ [95 % CI] | p | Holm-adjusted p | verdict |", "|---|---|---|---|---|"]
    for claim in tested:
        out.append(f"| {_name(claim)} | {describe(claim.difference, claim.digits)} | {claim.p:.3g} | "
                   f"{claim.adjusted_p:.3g} | {claim.verdict()} |")
    def names(verdict: str) -> str:
        return ", ".join(_name(c) for c in tested if c.verdict() == verdict) or "none"

    return out + ["", f"After the correction, reproduced: {names('reproduced')}; contradicted: "
                      f"{names('not reproduced (significant in the opposite direction)')}; the rest inconclusive.", ""]


def _name(claim: Claim) -> str:
    return claim.label.replace("**", "").replace("Verdict, ", "").lstrip("- ")


def figure(lines: List[str], path: str, caption: str) -> None:
    lines += [f"![{caption}]({os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))})",
              f"*{caption}*", ""]
