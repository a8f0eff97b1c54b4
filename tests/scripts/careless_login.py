"""Log in with its credentials and show them everywhere, as a careless handler would: in what it
prints, in its log and in its result (the tests of masking a run's output)."""

from __future__ import annotations

from jobs.handlers import task_log


def run(user: str, password: str, options: dict | None = None) -> dict:
    print(f"logging in as {user} with {password}")
    task_log("api key", (options or {}).get("api_key"))
    return {"user": user, "password": password, "options": options}
