"""Closed-population abundance from capture histories, and the Program MARK export of those histories.

Pure arithmetic on 0/1 capture matrices (rows: individuals, columns: sessions); the selectors build the
matrices from curated identifications. Formulas follow Seber (1982) and Krebs, *Ecological Methodology*
(ch. 2):

- Lincoln-Petersen (two sessions): N = n1 n2 / m2, variance n1 n2 (n1 - m2)(n2 - m2) / m2^3.
- Chapman (two sessions, nearly unbiased, defined when m2 = 0):
  N = (n1 + 1)(n2 + 1) / (m2 + 1) - 1, variance (n1 + 1)(n2 + 1)(n1 - m2)(n2 - m2) / ((m2 + 1)^2 (m2 + 2)).
  Both intervals are Chao's (1987) log-normal interval on the animals never caught, f0 = N - M, so the lower
  bound never falls below the M animals actually seen (a symmetric normal interval often does).
- Schnabel (three or more sessions), with Chapman's +1: N = sum(C_t M_t) / (sum(R_t) + 1), where C_t animals
  are caught in session t, R_t of them already marked, and M_t animals were marked before t. The interval
  treats R = sum(R_t) as Poisson: exact chi-square limits for R < 50, the normal approximation on 1/N above.

A library was not used: the maintained R packages (Rcapture, RMark) need R, and the Python ports are
unmaintained; the formulas are short and tested against hand-computed values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054
POISSON_EXACT_BELOW = 50


@dataclass(frozen=True)
class Estimate:
    method: str
    abundance: float
    se: float | None
    ci_low: float
    ci_high: float
    observed: int  # distinct animals caught in any session
    note: str = ""


def capture_matrix(histories: Sequence[Sequence[int]]) -> np.ndarray:
    """Validate capture histories as a boolean matrix (individuals x sessions)."""
    matrix = np.asarray(histories, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError("Capture histories need at least two sessions.")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError("Capture histories hold only 0 and 1.")
    return matrix.astype(bool)


def _lognormal_interval(abundance: float, variance: float, observed: int) -> tuple[float, float]:
    f0 = abundance - observed
    if f0 <= 0 or variance <= 0:  # every animal seen, or no sampling variance: nothing to spread
        return max(abundance, observed), max(abundance, observed)
    c = math.exp(Z95 * math.sqrt(math.log(1 + variance / f0**2)))
    return observed + f0 / c, observed + f0 * c


def _two_sessions(matrix: np.ndarray) -> tuple[int, int, int]:
    first, second = matrix[:, 0], matrix[:, 1]
    return int(first.sum()), int(second.sum()), int((first & second).sum())


def lincoln_petersen(n1: int, n2: int, m2: int) -> Estimate:
    observed = n1 + n2 - m2
    if m2 == 0:
        return Estimate(
            "Lincoln-Petersen", math.inf, None, observed, math.inf, observed, "No recaptures: undefined."
        )
    abundance = n1 * n2 / m2
    variance = n1 * n2 * (n1 - m2) * (n2 - m2) / m2**3
    low, high = _lognormal_interval(abundance, variance, observed)
    return Estimate("Lincoln-Petersen", abundance, math.sqrt(variance), low, high, observed)


def chapman(n1: int, n2: int, m2: int) -> Estimate:
    observed = n1 + n2 - m2
    abundance = (n1 + 1) * (n2 + 1) / (m2 + 1) - 1
    variance = (n1 + 1) * (n2 + 1) * (n1 - m2) * (n2 - m2) / ((m2 + 1) ** 2 * (m2 + 2))
    low, high = _lognormal_interval(abundance, variance, observed)
    note = "Fewer than 7 recaptures: the estimate is biased (Robson & Regier)." if m2 < 7 else ""
    return Estimate("Chapman", abundance, math.sqrt(variance), low, high, observed, note)


def schnabel_terms(matrix: np.ndarray) -> tuple[float, int]:
    """(sum of C_t M_t, sum of R_t) over the sessions."""
    marked = np.zeros(matrix.shape[0], dtype=bool)
    sum_cm, sum_r = 0.0, 0
    for t in range(matrix.shape[1]):
        caught = matrix[:, t]
        sum_cm += float(caught.sum()) * float(marked.sum())
        sum_r += int((caught & marked).sum())
        marked |= caught
    return sum_cm, sum_r


def schnabel(matrix: np.ndarray) -> Estimate:
    observed = int(matrix.any(axis=1).sum())
    sum_cm, sum_r = schnabel_terms(matrix)
    abundance = sum_cm / (sum_r + 1)
    if sum_r < POISSON_EXACT_BELOW:
        r_low = stats.chi2.ppf(0.025, 2 * sum_r) / 2 if sum_r > 0 else 0.0
        r_high = stats.chi2.ppf(0.975, 2 * sum_r + 2) / 2
        low, high = sum_cm / (r_high + 1), sum_cm / (r_low + 1) if r_low > 0 else math.inf
        note = "Interval from exact Poisson limits on the recaptures."
    else:
        inverse, se_inverse = 1 / abundance, math.sqrt(sum_r) / sum_cm
        low, high = 1 / (inverse + Z95 * se_inverse), 1 / (inverse - Z95 * se_inverse)
        note = "Interval from the normal approximation on 1/N."
    se = abundance**2 * math.sqrt(sum_r) / sum_cm if sum_r and sum_cm else None
    return Estimate("Schnabel", abundance, se, max(low, observed), high, observed, note)


def estimate(histories: Sequence[Sequence[int]]) -> list[Estimate]:
    """The estimators that fit the number of sessions: Lincoln-Petersen and Chapman for two, Schnabel for
    more."""
    matrix = capture_matrix(histories)
    if matrix.shape[1] == 2:
        n1, n2, m2 = _two_sessions(matrix)
        return [lincoln_petersen(n1, n2, m2), chapman(n1, n2, m2)]
    return [schnabel(matrix)]


def mark_inp(rows: Sequence[tuple[str, Sequence[int]]], title: str = "") -> str:
    """Capture histories as a Program MARK input file: one encounter history per individual (a string of
    0/1, one character per session), its frequency (1), and a terminating semicolon; the individual's label
    as a /* comment */. Individuals never caught in any session are left out (MARK rejects all-zero rows)."""
    lines = [f"/* {_comment(title)} */"] if title else []
    length = None
    for label, history in rows:
        if length is None:
            length = len(history)
        if len(history) != length or any(v not in (0, 1) for v in history):
            raise ValueError(f"{label}: histories must be 0/1 strings of one length.")
        if any(history):
            lines.append(f"/* {_comment(label)} */ {''.join(str(v) for v in history)} 1;")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    # A "*/" inside a label would end the comment early and corrupt the file.
    return text.replace("*/", "* /").replace("\n", " ")
