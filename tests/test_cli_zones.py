"""`sma schedule create` takes the machine's time zone, and shows next runs in the
schedule's zone."""

from __future__ import annotations

from tests.test_cli import cli  # noqa: F401 - the fixture
from tests.test_portal import sign_in

START = "2027-12-01T02:00:00+01:00"


def test_create_takes_the_machine_zone_and_shows_its_wall_clock(cli, api):  # noqa: F811
    made = cli("schedule", "create", "nightly", "--frequency", "Day", "--start", START,
               env={"TZ": "Europe/Paris"})
    assert made.returncode == 0, made.stderr
    assert ("Created schedule 'nightly' in time zone Europe/Paris; next run 2027-12-01 02:00 "
            "Europe/Paris.") in made.stderr
    assert api.get("/api/v1/schedules/nightly").get_json()["time_zone"] == "Europe/Paris"
    listed = cli("schedule", "list")
    assert "2027-12-01 02:00 Europe/Paris" in listed.stdout
    shown = cli("schedule", "show", "nightly")
    assert "2027-12-01 02:00 Europe/Paris" in shown.stdout
    given = cli("schedule", "create", "tokyo", "--frequency", "Day", "--start", START,
                "--time-zone", "Asia/Tokyo", env={"TZ": "Europe/Paris"})
    assert given.returncode == 0, given.stderr
    assert "next run 2027-12-01 10:00 Asia/Tokyo" in given.stderr


def test_a_link_shows_the_next_run_in_the_schedules_zone(cli, api, client):  # noqa: F811
    assert cli("schedule", "create", "nightly", "--frequency", "Day", "--start", START,
               env={"TZ": "Europe/Paris"}).returncode == 0
    (cli.tmp / "hello.sh").write_text("echo hi\n", encoding="utf-8")
    assert cli("runbook", "import", "hello.sh", "--publish").returncode == 0
    linked = cli("schedule", "link", "nightly", "hello")
    assert linked.returncode == 0, linked.stderr
    assert ("Linked 'hello' to schedule 'nightly'; next run 2027-12-01 02:00 Europe/Paris."
            in linked.stderr)
    # the runbook's page lists its schedules with their next run on the schedule's clock
    sign_in(client)
    page = client.get("/runbooks/hello").get_data(as_text=True)
    assert "next 2027-12-01 02:00 Europe/Paris" in page
    assert "2027-12-01 01:00:00 UTC" not in page


def test_an_offset_that_is_not_a_known_zone_is_refused(cli, api):  # noqa: F811
    unknown = cli("schedule", "create", "a", "--frequency", "Day", "--start", START,
                  env={"TZ": "<+03>-3"})  # a POSIX rule, not an IANA zone
    assert unknown.returncode == 2
    assert "add --time-zone" in unknown.stderr and "zone is unknown" in unknown.stderr
    other = cli("schedule", "create", "b", "--frequency", "Day", "--start", START,
                env={"TZ": "America/New_York"})
    assert other.returncode == 2
    assert "not this machine's zone America/New_York" in other.stderr
    assert api.get("/api/v1/schedules").get_json()["items"] == []
    utc = cli("schedule", "create", "c", "--frequency", "Day",
              "--start", "2027-12-01T02:00:00+00:00", env={"TZ": "<+03>-3"})
    assert utc.returncode == 0, utc.stderr
    assert "in time zone UTC" in utc.stderr
