"""axe-core (vendored in static/vendor/axe-core/) run in a Playwright page, for the accessibility tests.

The page's Content-Security-Policy allows scripts from 'self' only and no inline script: the test's browser
context is created with bypass_csp=True so that Playwright may add axe as a script tag. Only the tests that
run axe do that; every other browser test keeps the policy in force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parents[2] / "static" / "vendor" / "axe-core" / "axe.min.js"
# What the tests refuse; moderate and minor findings are reported, not failed.
BLOCKING = ("serious", "critical")
# WCAG 2.x A and AA, and axe's best practices (landmarks, one h1, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

RUN = """async (tags) => {
  const options = { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] };
  const result = await axe.run(document, options);
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({
      target: n.target.join(" "), html: n.html.slice(0, 300), summary: n.failureSummary,
    })),
  }));
}"""


def violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (axe is injected again after every navigation)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(RUN, TAGS)
    return found


def blocking(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in found if v["impact"] in BLOCKING]


def describe(page_name: str, found: list[dict[str, Any]]) -> list[str]:
    """One line per element: page, rule, impact, element."""
    return [
        f"{page_name}: {v['id']} ({v['impact']}: {v['help']}) at {n['target']}: {n['html'][:160]}"
        for v in found
        for n in v["nodes"]
    ]
