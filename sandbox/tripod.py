"""The TRIPOD+AI checklist (Collins et al., BMJ 2024) items the platform can fill for a
validation, with what it states and where each is found.

TRIPOD+AI has 27 main items; a model *evaluation* report written by a team needs most of them.
The platform knows only part: how the held-out data were chosen, the outcome and predictors as
the task card defines them, the sample, the performance measures and their results. Those items
are filled here (``filled`` or ``partly``); everything else is left to the team (``team``) and
listed so the checklist is complete. Item numbers and topics follow the published checklist.
"""

from __future__ import annotations

from typing import Any

# (item, section, topic) for every main item and sub-item of the TRIPOD+AI checklist.
ITEMS: tuple[tuple[str, str, str], ...] = (
    ("1", "Title", "Identify the study as developing or evaluating a prediction model"),
    ("2", "Abstract", "See TRIPOD+AI for Abstracts"),
    ("3a", "Introduction", "Healthcare context and rationale"),
    ("3b", "Introduction", "Target population and place in the care pathway"),
    ("3c", "Introduction", "Known health inequalities between groups"),
    ("4", "Introduction", "Study objectives"),
    ("5a", "Methods: data", "Sources of data and their representativeness"),
    ("5b", "Methods: data", "Dates of the collected data"),
    ("6a", "Methods: participants", "Study setting"),
    ("6b", "Methods: participants", "Eligibility criteria"),
    ("6c", "Methods: participants", "Treatments received"),
    ("7", "Methods: data preparation", "Pre-processing and quality checking"),
    ("8a", "Methods: outcome", "Outcome definition and time horizon"),
    ("8b", "Methods: outcome", "Qualifications of outcome assessors"),
    ("8c", "Methods: outcome", "Blinding of outcome assessment"),
    ("9a", "Methods: predictors", "Choice of initial predictors"),
    ("9b", "Methods: predictors", "Definition and measurement of predictors"),
    ("9c", "Methods: predictors", "Qualifications of predictor assessors"),
    ("10", "Methods: sample size", "Study size and how it was arrived at"),
    ("11", "Methods: missing data", "How missing data were handled"),
    ("12a", "Methods: analysis", "How the data were used (partitioning)"),
    ("12b", "Methods: analysis", "How predictors were handled in the analysis"),
    ("12c", "Methods: analysis", "Model type, building and internal validation"),
    ("12d", "Methods: analysis", "Heterogeneity across clusters"),
    ("12e", "Methods: analysis", "Performance measures and plots, and comparison of models"),
    ("12f", "Methods: analysis", "Model updating"),
    ("12g", "Methods: analysis", "How predictions were calculated in the evaluation"),
    ("13", "Methods: class imbalance", "Class imbalance methods"),
    ("14", "Methods: fairness", "Approaches to model fairness"),
    ("15", "Methods: model output", "Output of the model and thresholds"),
    ("16", "Methods: training versus evaluation", "Differences between development and "
                                                   "evaluation data"),
    ("17", "Methods: ethics", "Ethical approval"),
    ("18a", "Open science", "Funding"),
    ("18b", "Open science", "Conflicts of interest"),
    ("18c", "Open science", "Protocol"),
    ("18d", "Open science", "Registration"),
    ("18e", "Open science", "Data sharing"),
    ("18f", "Open science", "Code sharing"),
    ("19", "Patient and public involvement", "Patient and public involvement"),
    ("20a", "Results: participants", "Flow of participants, with and without the outcome"),
    ("20b", "Results: participants", "Characteristics of participants"),
    ("20c", "Results: participants", "Predictor distributions compared with development data"),
    ("21", "Results: model development", "Participants and outcome events in each analysis"),
    ("22", "Results: model specification", "Full model specification"),
    ("23a", "Results: model performance", "Performance with confidence intervals, including "
                                          "key subgroups"),
    ("23b", "Results: model performance", "Heterogeneity across clusters"),
    ("24", "Results: model updating", "Results of model updating"),
    ("25", "Discussion", "Interpretation"),
    ("26", "Discussion", "Limitations"),
    ("27a", "Discussion", "Handling of poor-quality or unavailable input data"),
    ("27b", "Discussion", "User interaction and expertise required"),
    ("27c", "Discussion", "Future research and generalisability"),
)


def _f(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "not estimable"
    if entry.get("lower") is None:
        return f"{entry['value']:.3f}"
    return f"{entry['value']:.3f} (95% CI {entry['lower']:.3f}–{entry['upper']:.3f})"


def _filled(report: dict[str, Any], card: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """item -> (status, what the platform states, where it is)."""
    figures = report["metrics"] or {}
    primary = report["primary"]
    overall = figures.get("overall") or {
        "n": report["data"]["rows"], "positives": "(not released)", "prevalence": None,
        "auroc": primary if primary.get("metric") == "auroc" else None}
    task, release = report["task"], report["release"]
    subgroups = figures.get("subgroups", [])
    shown = [s for s in subgroups if not s.get("suppressed")]
    copies = "; ".join(f"{c['name']} ({c['overlap'].replace('_', ' ')})"
                       for c in card.get("public_copies") or []) or "none listed"
    return {
        "5a": ("partly", f"Held-out partition of dataset '{release['dataset']}' release "
                         f"{release['version']}. Public copies: {copies}.",
               "Report › Provenance; task card › public copies"),
        "6b": ("filled", "Eligibility is the task's population SQL: "
                         + card.get("question", "").strip(),
               "Task card › population SQL (published)"),
        "7": ("partly", "De-identified release (Safe Harbor transforms, k-anonymity report); "
                        "features computed by the task's published SQL.",
              "Dataset card › de-identification report; task card › feature SQL"),
        "8a": ("filled", (card.get("label_meaning") or "See the label SQL.")
               + (f" Time horizon: {card['outcome_window_days']} days."
                  if card.get("outcome_window_days") else ""),
               "Task card › label meaning and label SQL"),
        "9b": ("filled", f"{len(task['features'])} predictors, in order: "
                         f"{', '.join(task['features'])}.",
               "Task card › features (names, types, descriptions, SQL)"),
        "10": ("partly", f"All {overall['n']} eligible held-out cases "
                         f"({overall['positives']} with the outcome); no sample size "
                         f"calculation by the platform.", "Report › Overall › cases"),
        "11": ("partly", "Feature values that are NULL reach the model as NaN; the bundled "
                         "task SQL produces none.", "Validation guide › feature SQL"),
        "12a": ("filled", "Persons were split into dev and held-out partitions by a salted "
                          "hash of their key before any team had access; this evaluation "
                          "used only the held-out partition.",
                "Report › Provenance (release); architecture › data flow"),
        "12e": ("filled", "AUROC (DeLong 95% CI), AUPRC, Brier score, calibration intercept "
                          "and slope with a reliability plot, sensitivity, specificity, PPV, "
                          "NPV (Wilson 95% CI) and net benefit at the task's thresholds; "
                          "models compared on the leaderboard by paired DeLong tests.",
                "Report › Overall, thresholds, plots; leaderboard"),
        "12g": ("filled", "The team's ONNX file was scored by the platform in an isolated "
                          "process without network or labels.",
                "Report › Provenance (model SHA-256, code version, receipt)"),
        "14": ("partly", f"Performance reported per subgroup "
                         f"({', '.join(sorted({s['attribute'] for s in subgroups})) or 'none'})"
                         f"; subgroups under {task['min_subgroup_size']} cases suppressed.",
               "Report › Subgroups (forest plot)"),
        "15": ("filled", f"A probability per case; thresholds "
                         f"{', '.join(f'{t:g}' for t in task.get('thresholds', []))}.",
               "Task card › thresholds; report › at decision thresholds"),
        "18c": ("filled", f"Task {task['id']} version {task['version']}, protocol SHA-256 "
                          f"{task['protocol_hash']}.", "Report › Provenance (protocol hash)"),
        "20a": ("filled", f"{overall['n']} cases, {overall['positives']} with the outcome "
                          f"(prevalence {_f(overall['prevalence'])}).",
                "Report › Overall"),
        "21": ("filled", "Cases and outcome events per analysis: overall and per subgroup "
                         "level (suppressed levels give no count).",
               "Report › Overall and Subgroups"),
        "23a": ("filled", f"AUROC {_f(overall['auroc'])}; "
                          + "; ".join(f"{s['attribute']} {s['level']}: {_f(s['auroc'])}"
                                      for s in shown),
                "Report › Overall and Subgroups"),
    }


def checklist(report: dict[str, Any], card: dict[str, Any]) -> list[dict[str, str]]:
    """Every TRIPOD+AI item with ``status`` (filled, partly, team), what the platform states
    and where it is; items the platform cannot fill say the team reports them."""
    filled = _filled(report, card)
    rows = []
    for item, section, topic in ITEMS:
        status, text, where = filled.get(item, ("team", "", "The team's own report"))
        rows.append({"item": item, "section": section, "topic": topic, "status": status,
                     "platform_states": text, "where": where})
    return rows


def to_markdown(rows: list[dict[str, str]], title: str) -> str:
    """The checklist as a Markdown table (pipes in texts escaped)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# TRIPOD+AI checklist: {cell(title)}", "",
             "| Item | Section | Topic | Status | What the platform states | Where |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['item']} | {cell(r['section'])} | {cell(r['topic'])} | {r['status']} | "
              f"{cell(r['platform_states'])} | {cell(r['where'])} |" for r in rows]
    return "\n".join(lines) + "\n"
