"""Teams and people: onboard a startup (create the team, invite members by e-mail), invite,
suspend, reactivate or remove a member, suspend or reactivate a team, see each team's grants."""

import streamlit as st

from portal.errors import PortalError
from portal.services import people
from portal.ui import widgets
from portal.ui.errors import or_stop, show_error
from portal.ui.session import require_principal
from portal.ui.text import md_escape

me, ctx = require_principal("staff", page="teams")
st.title("Teams and people")
widgets.show_flash()


def attempt(call, done: str) -> None:
    try:
        call()
    except PortalError as exc:
        show_error(exc)
        return
    widgets.flash(done)


teams = or_stop(lambda: people.list_teams(ctx, me))

for team in teams:
    label = f"{team['name']} ({team['team']}) · {team['status']} · {len(team['members'])} members"
    with st.expander(md_escape(label)):
        st.caption("Members")
        st.dataframe(team["members"] or [{"email": "none"}], hide_index=True, width="stretch")
        st.caption("Grants")
        widgets.grants_table(team["grants"])

slugs = [t["team"] for t in teams]
onboard, member, team_tab = st.tabs(["Onboard a startup", "Members", "Teams"])
with onboard, st.form("onboard_form"):
    slug = st.text_input("Team name (lowercase, e.g. delta-labs)", key="onboard_slug")
    title = st.text_input("Display name", key="onboard_name")
    emails = st.text_area("Invite members (one e-mail address per line)", key="onboard_emails")
    if st.form_submit_button("Create team and invite", type="primary"):
        invited = [e.strip() for e in emails.splitlines() if e.strip()]
        attempt(lambda: people.onboard_team(ctx, me, slug, title, invited),
                f"Team {slug} created; {len(invited)} invited.")
with member:
    with st.form("invite_form"):
        team_slug = st.selectbox("Team", slugs, key="invite_team")
        email = st.text_input("E-mail address to invite", key="invite_email")
        if st.form_submit_button("Invite"):
            attempt(lambda: people.invite_member(ctx, me, team_slug, email),
                    f"Invited {email}.")
    with st.form("member_status_form"):
        who = st.text_input("Member e-mail address", key="member_email")
        action = st.radio("Action", ["suspend", "reactivate", "remove"], horizontal=True,
                          key="member_action")
        why = st.text_input("Reason (required to suspend or remove)", key="member_reason")
        if st.form_submit_button("Apply"):
            calls = {"suspend": lambda: people.suspend_member(ctx, me, who, why),
                     "reactivate": lambda: people.reactivate_member(ctx, me, who),
                     "remove": lambda: people.remove_member(ctx, me, who, why)}
            attempt(calls[action], f"{action.capitalize()}: done for {who}.")
with team_tab, st.form("team_status_form"):
    team_slug = st.selectbox("Team", slugs, key="status_team")
    action = st.radio("Action", ["suspend", "reactivate"], horizontal=True, key="team_action")
    why = st.text_input("Reason (required to suspend)", key="team_reason")
    if st.form_submit_button("Apply"):
        calls = {"suspend": lambda: people.suspend_team(ctx, me, team_slug, why),
                 "reactivate": lambda: people.reactivate_team(ctx, me, team_slug)}
        attempt(calls[action], f"Team {team_slug}: {action} done.")
