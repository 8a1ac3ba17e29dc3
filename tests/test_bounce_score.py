"""The bounce score: weights and the window on inputs alone, then through the store and the
Maildir intake (SQLite and PostgreSQL) with bounces dated in the past, and the commands that
show it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import update
from test_bounces import SENDER, _config, _deliver, dsn

from digestd import cli, links
from digestd.bounce_score import BounceRules, BounceScore
from digestd.config import BouncesConfig, DeliveryConfig
from digestd.config_load import load_config
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.intake import read_bounces
from digestd.errors import ConfigError
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store.models import Subscriber
from digestd.subscribers import add_subscriber

from support import feed_titles

T0 = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
RULES = BounceRules(threshold=3.0, hard=1.0, soft=0.5, window=7 * DAY)


# On inputs alone -------------------------------------------------------------------------------


def test_hard_bounces_weigh_more_than_soft_ones() -> None:
    score = BounceScore().add("soft", RULES, T0).add("hard", RULES, T0 + DAY)
    assert (score.count, score.score, score.last_at) == (2, 1.5, T0 + DAY)
    assert not score.reaches(RULES.threshold)
    assert score.add("hard", RULES, T0 + 2 * DAY).add("soft", RULES, T0 + 3 * DAY).reaches(3.0)


def test_a_score_is_forgotten_a_window_after_the_last_bounce() -> None:
    score = BounceScore().add("hard", RULES, T0).add("hard", RULES, T0 + 6 * DAY)
    # each bounce moves the window on: six days after the second, the score stands
    assert score.current(RULES, T0 + 12 * DAY) == score
    assert score.resets_at(RULES) == T0 + 13 * DAY
    assert score.current(RULES, T0 + 13 * DAY) == BounceScore()
    # a bounce after the window starts again from its own weight
    again = score.add("soft", RULES, T0 + 20 * DAY)
    assert (again.count, again.score, again.resets_at(RULES)) == (1, 0.5, T0 + 27 * DAY)


def test_soft_bounces_spread_over_a_year_never_add_up() -> None:
    score = BounceScore()
    for month in range(12):
        score = score.add("soft", RULES, T0 + month * 30 * DAY)
        assert (score.count, score.score) == (1, 0.5)
    # ... while the same bounces within a week reach any threshold in the end
    week = BounceScore()
    for n in range(6):
        week = week.add("soft", RULES, T0 + n * DAY)
    assert week.reaches(3.0) and week.score == 3.0


def test_small_weights_still_reach_the_threshold() -> None:
    rules = dataclasses.replace(RULES, soft=0.1, threshold=1.0)
    score = BounceScore()
    for n in range(10):
        score = score.add("soft", rules, T0 + n * HOUR)
    assert score.score != 1.0 and score.reaches(1.0)  # 0.1 ten times is 0.9999999999999999


def test_the_weights_and_window_come_from_the_delivery_keys(tmp_path: Path) -> None:
    path = tmp_path / "digestd.toml"
    path.write_text(
        "[delivery]\npause_after_failures = 5\nhard_bounce_score = 2\n"
        "soft_bounce_score = 0\nbounce_window_days = 1.5\n"
    )
    rules = BounceRules.of(load_config(path, environ={}, check_dirs=False))
    assert rules == BounceRules(threshold=5.0, hard=2.0, soft=0.0, window=36 * HOUR)
    assert BounceRules.of(load_config(None, environ={}, check_dirs=False)) == RULES
    for key, value, message in [
        ("hard_bounce_score", "0", "must be positive"),
        ("soft_bounce_score", "-1", "must not be negative"),
        ("bounce_window_days", "0", "must be positive"),
    ]:
        path.write_text(f"[delivery]\n{key} = {value}\n")
        with pytest.raises(ConfigError, match=f"key 'delivery.{key}' {message}"):
            load_config(path, environ={}, check_dirs=False)


# Through the store and the intake -------------------------------------------------------------


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    config = _config(tmp_path)
    config = dataclasses.replace(config, delivery=DeliveryConfig(pause_after_failures=3))
    return Runtime.open(config, store=store)


def _age_last_bounce(store: Store, email: str, days: float) -> None:
    """Move the stored last bounce back in time, as if it had come `days` earlier."""
    with store.write() as session:
        row = session.query(Subscriber).filter_by(email_key=email).one()
        assert row.last_bounce_at is not None
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == row.id)
            .values(last_bounce_at=row.last_bounce_at - dt.timedelta(days=days))
        )


def test_refusals_a_year_apart_never_pause_and_a_close_run_does(runtime: Runtime) -> None:
    store = runtime.store
    ada, _ = add_subscriber(store, "ada@example.net", ["widgets"])
    now = dt.datetime.now(dt.UTC)
    # three hard refusals spread over a year: each finds the last one forgotten
    for days_ago in (360, 180, 1):
        after = store.record_bounce(
            ada.id, error="550 5.1.1 no such user", pause_after=3,
            now=now - dt.timedelta(days=days_ago),
        )
        assert after is not None and after.status == "active"
    current = store.subscriber("ada@example.net")
    assert current is not None
    assert (current.bounce_count, current.bounce_score) == (1, 1.0)
    assert current.bounce_resets_at == now - DAY + 7 * DAY
    # two more within the window: the third in a week pauses
    store.record_bounce(ada.id, error="550 5.1.1 no such user", pause_after=3, now=now)
    paused = store.record_bounce(ada.id, error="550 5.2.1 disabled", pause_after=3, now=now)
    assert paused is not None and paused.status == "paused"
    assert (paused.bounce_count, paused.bounce_score) == (3, 3.0)
    assert paused.pause_reason == (
        "bounce score 3 of 3 (3 bounces, each within 7 days of the one before); "
        "the last: 550 5.2.1 disabled"
    )
    # resuming clears the score, the count and when it would have reset
    resumed = store.resume_subscriber(ada.id)
    assert resumed is not None
    assert (resumed.status, resumed.bounce_count, resumed.bounce_score) == ("active", 0, 0.0)
    assert resumed.bounce_resets_at is None


def test_an_accepted_delivery_resets_the_score(store: Store, tmp_path: Path) -> None:
    """Without a bounce mailbox, a digest the transport accepted is a delivery that worked:
    the score goes back to zero, and the next bounce starts from its own weight."""
    config = dataclasses.replace(_config(tmp_path), bounces=BouncesConfig())
    runtime = Runtime.open(config, store=store)
    ada, _ = add_subscriber(store, "ada@example.net", ["widgets"], cadence="immediate")
    store.record_bounce(ada.id, error="550 5.1.1", pause_after=3)
    store.record_bounce(ada.id, error="452 4.2.2", pause_after=3, severity="soft")
    before = store.subscriber("ada@example.net")
    assert before is not None and (before.bounce_count, before.bounce_score) == (2, 1.5)
    feed_titles(runtime, ["Widget wrangling"])
    now = dt.datetime.now(dt.UTC)
    plan_digests(runtime, now)
    assert send_pending(runtime, now).sent == 1  # into the Maildir outbox
    cleared = store.subscriber("ada@example.net")
    assert cleared is not None and (cleared.bounce_count, cleared.bounce_score) == (0, 0.0)
    assert cleared.bounce_resets_at is None
    after = store.record_bounce(ada.id, error="550 5.1.1", pause_after=3)
    assert after is not None and (after.bounce_count, after.bounce_score) == (1, 1.0)


def test_mailed_bounces_score_by_severity_and_decay(runtime: Runtime) -> None:
    store = runtime.store
    ada, _ = add_subscriber(store, "ada@example.net", ["widgets"])
    to_ada = links.verp_address(SENDER, ada.token)
    full = {"status": "4.2.2", "diagnostic": "smtp; 452 4.2.2 <{r}>: Mailbox full"}
    # a soft bounce (the remote server gave up on a full mailbox) and a delay notice
    _deliver(runtime, dsn("ada@example.net", to=to_ada, **full),
             dsn("ada@example.net", to=to_ada, action="delayed", status="4.4.1"))
    report = read_bounces(runtime)
    assert (report.read, report.bounces, report.ignored, report.kept) == (2, 1, 1, 0)
    after = store.subscriber("ada@example.net")
    assert after is not None and (after.bounce_count, after.bounce_score) == (1, 0.5)
    assert after.last_error is not None and after.last_error.startswith("soft bounce by mail")
    # eight days later (the window is seven) a hard bounce starts a new score
    _age_last_bounce(store, "ada@example.net", 8)
    _deliver(runtime, dsn("ada@example.net", to=to_ada))
    read_bounces(runtime)
    after = store.subscriber("ada@example.net")
    assert after is not None and (after.bounce_count, after.bounce_score) == (1, 1.0)
    # within the window they add up: 1 + 1 + 0.5 + 0.5 reaches 3
    _age_last_bounce(store, "ada@example.net", 5)
    _deliver(runtime, dsn("ada@example.net", to=to_ada))
    assert read_bounces(runtime).paused == 0
    _deliver(runtime, dsn("ada@example.net", to=to_ada, **full))
    assert read_bounces(runtime).paused == 0
    _deliver(runtime, dsn("ada@example.net", to=to_ada, **full))
    assert read_bounces(runtime).paused == 1
    paused = store.subscriber("ada@example.net")
    assert paused is not None and paused.status == "paused"
    assert (paused.bounce_count, paused.bounce_score) == (4, 3.0)


def test_soft_bounces_can_be_ignored(store: Store, tmp_path: Path) -> None:
    config = _config(tmp_path)
    config = dataclasses.replace(
        config, delivery=DeliveryConfig(pause_after_failures=1, soft_bounce_score=0.0)
    )
    runtime = Runtime.open(config, store=store)
    ada, _ = add_subscriber(store, "ada@example.net", ["widgets"])
    _deliver(runtime, dsn("ada@example.net", to=links.verp_address(SENDER, ada.token),
                          status="4.2.2"))
    report = read_bounces(runtime)
    assert (report.bounces, report.ignored) == (0, 1)
    after = store.subscriber("ada@example.net")
    assert after is not None and (after.status, after.bounce_count) == ("active", 0)


def test_the_commands_show_the_score_and_when_it_resets(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = runtime.store
    ada, _ = add_subscriber(store, "ada@example.net", ["widgets"])
    add_subscriber(store, "bob@example.net", ["widgets"])
    cy, _ = add_subscriber(store, "cy@example.net", ["widgets"])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    store.record_bounce(ada.id, error="550 5.1.1 no such user", pause_after=3,
                        now=now - 2 * DAY)
    store.record_bounce(ada.id, error="452 4.2.2 mailbox full", pause_after=3, now=now,
                        severity="soft")
    # Cy's only bounce is ten days old: forgotten, listed nowhere
    store.record_bounce(cy.id, error="550 5.1.1", pause_after=3, now=now - 10 * DAY)
    resets = now + 7 * DAY
    runtime.config.paths.data_dir.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "digestd.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{runtime.config.paths.data_dir}"\n'
        f'[database]\nurl = "{store.engine.url.render_as_string(hide_password=False)}"\n'
        "[delivery]\npause_after_failures = 3\n"
    )

    assert cli.main(["subscribers", "list", "--json", "--config", str(config)]) == 0
    listed = {s["email"]: s for s in json.loads(capsys.readouterr().out)}
    ada_listed = listed["ada@example.net"]
    assert (ada_listed["bounces"], ada_listed["bounce_score"]) == (2, 1.5)
    assert ada_listed["bounce_resets"] == resets.isoformat()
    for other in ("bob@example.net", "cy@example.net"):
        assert (listed[other]["bounces"], listed[other]["bounce_score"]) == (0, 0.0)
        assert listed[other]["bounce_resets"] is None

    assert cli.main(["subscribers", "list", "--config", str(config)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    when = resets.strftime("%Y-%m-%d %H:%M UTC")
    assert lines["ada@example.net"].endswith(
        f"[bounce score 1.5 of 3 (2 bounces), resets {when}]"
    )
    assert "bounce" not in lines["bob@example.net"] + lines["cy@example.net"]

    assert cli.main(["bounces", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"bounce score 1.5 of 3 (2 bounces), resets {when}" in out
    assert "last: 452 4.2.2 mailbox full" in out
    assert "1 with a bounce score" in out and "cy@example.net" not in out

    assert cli.main(["bounces", "list", "--json", "--config", str(config)]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores == [{
        "email": "ada@example.net", "status": "active", "bounces": 2, "bounce_score": 1.5,
        "pause_at": 3, "bounce_resets": resets.isoformat(),
        "last_error": "452 4.2.2 mailbox full",
    }]
