"""Leaderboards, one per validation task and dataset release: each team's best with its 95%
interval, the platform's reference model, and whether each entry is statistically
distinguishable from the leader (paired DeLong). Teams see the public board and their own
entries; staff see every run."""

import pandas as pd
import streamlit as st

from portal.services import leaderboard, sandbox
from portal.ui import report as report_view
from portal.ui import runs
from portal.ui.errors import or_stop
from portal.ui.session import require_principal

me, ctx = require_principal("any", page="leaderboard")
st.title("Leaderboards")
cards = or_stop(lambda: sandbox.tasks(ctx))
if not cards:
    st.info("No validation tasks are published yet.")
    st.stop()
task_id = st.selectbox("Task", list(cards), format_func=lambda t: f"{cards[t].title} ({t})",
                       key="lb_task")
board = or_stop(lambda: leaderboard.leaderboard(ctx, me, task_id))
if board["releases"][1:]:
    chosen = st.selectbox("Release", board["releases"], key="lb_release")
    if chosen != board["release_version"]:
        board = or_stop(lambda: leaderboard.leaderboard(ctx, me, task_id, chosen))
metric = board["metric"].upper()
staff_view = board["staff_view"]
st.caption(f"Task {board['task']} v{board['task_version']} · release "
           f"{board['release_version'] or '—'} · ranked by {metric} (95% CI) · "
           + ("staff view: every run with a report, exact figures"
              if staff_view else "each team's released best, the platform reference and "
                                  "your team's own runs"))
if not board["entries"]:
    st.info("No results on this task yet.")
    st.stop()
rows = [{"rank": e["rank"], "team": e["team_name"] + (" (yours)" if e["own"] else ""),
         "model": e["model"], "run": e["run_id"],
         metric: report_view.interval({"value": e["value"], "lower": e["lower"],
                                       "upper": e["upper"]}),
         "compared with the leader": e["statement"],
         **({"vs leader (AUROC difference, 95% CI)": "—" if not e["comparison"] else
             report_view.interval({"value": e["comparison"]["difference"],
                                   "lower": e["comparison"]["lower"],
                                   "upper": e["comparison"]["upper"]}),
             "status": e["status"].replace("_", " ")} if staff_view else
            {"figure": "full report" if e["final"] else "Ladder"})}
        for e in board["entries"]]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
distinct = [e for e in board["entries"] if e["comparison"] and e["comparison"]["distinguishable"]]
same = [e for e in board["entries"] if e["comparison"] and not e["comparison"]["distinguishable"]]
st.markdown(f"**{len(same)}** entr{'y is' if len(same) == 1 else 'ies are'} not statistically "
            f"distinguishable from the leader and **{len(distinct)}** "
            f"{'is' if len(distinct) == 1 else 'are'} (two-sided paired DeLong test of AUROC on "
            f"the same held-out cases, 5% level; no correction for multiple comparisons).")
own = [e for e in board["entries"] if e["own"] or staff_view]
for entry in own[:10]:
    runs.link(entry["run_id"], f"Run {entry['run_id']}: {entry['team_name']} · {entry['model']}")
