"""A team's Docent, shared by the tests of the ways in from elsewhere (MCP, the OpenAI-compatible
API): its home (support/team.py) and one `docent api` process serving it."""

from __future__ import annotations

import pytest

from support.processes import api_process
from support.team import TeamHome, make_team_home


@pytest.fixture(scope="session")
def team(docent, tmp_path_factory) -> TeamHome:
    return make_team_home(docent, tmp_path_factory.mktemp("team") / "home")


@pytest.fixture(scope="session")
def team_api(team, tmp_path_factory) -> str:
    """The base URL of `docent api` on the team's home, sign-in on."""
    log = tmp_path_factory.mktemp("team-api") / "api.log"
    with api_process(team.home, log, **team.environment(DOCENT_APP_URL="https://docent.example.com")) as (_, base):
        yield base
