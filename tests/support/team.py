"""A team's Docent home for the tests of the ways in from elsewhere (MCP, the OpenAI-compatible
API, Slack): sign-in on, an admin and a reader with API keys, the harbour handbook in the
default collection (everyone's) and a payroll ledger in 'payroll', which only the finance group
may see and the reader is not in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from retrieval.service import Docent, Source
from support.docents import docent_on
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf
from webapp.access import AccessControl, hash_password

SECRET_PAGES = [["Payroll ledger.", "The payroll budget for next year is 4.2 million euros, approved in March."]]
USERS = {
    "ada@example.com": {"role": "admin", "groups": ["finance"], "password_hash": hash_password("ada-pw")},
    "rita@example.com": {"role": "reader", "password_hash": hash_password("rita-pw")},
}
COLLECTION_ACCESS = {"payroll": {"groups": ["finance"]}}


@dataclass
class TeamHome:
    home: Path
    keys: dict[str, str]  # user -> API key

    def environment(self, **more: str) -> dict[str, str]:
        """The DOCENT_* settings a server of this home runs with."""
        return {
            "DOCENT_AUTH": "password",
            "DOCENT_USERS": json.dumps(USERS),
            "DOCENT_COLLECTION_ACCESS": json.dumps(COLLECTION_ACCESS),
            **more,
        }


def make_team_home(shared: Docent, home: Path) -> TeamHome:
    own = docent_on(shared, home, auth="password", users=USERS, collection_access=COLLECTION_ACCESS)
    try:
        for collection, name, pdf in (
            ("default", "handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)),
            ("payroll", "payroll.pdf", make_pdf(SECRET_PAGES)),
        ):
            outcome = own.ingest([Source(name=name, data=pdf)], collection=collection)[0]
            assert outcome.status == "added", outcome
        access = AccessControl(own.settings)
        keys = {name: access.create_api_key(name)[1] for name in USERS}
        access.close()
    finally:
        own.close()
    return TeamHome(home, keys)
