"""`sma schedule ...` and `sma webhook ...` (Get-SmaSchedule, Set-SmaSchedule)."""

from __future__ import annotations

import argparse

from smacli.cli.common import (
    Output,
    UsageError,
    act,
    add_common_to,
    client,
    command,
    parse_pairs,
)
from smacli.cli.zones import in_zone, zone_for

FREQUENCIES = ("OneTime", "Minute", "Hour", "Day", "Week", "Month", "Cron")
OCCURRENCES = ("First", "Second", "Third", "Fourth", "Last")


def _schedule_options(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--frequency", choices=FREQUENCIES, required=creating)
    p.add_argument("--interval", type=int, help="every N minutes, hours, days, weeks, months")
    p.add_argument("--start", help="first fire time, ISO 8601 with offset (default: now)")
    p.add_argument("--expiry", help="no fire after this time (ISO 8601 with offset)")
    p.add_argument("--time-zone", help="IANA time zone, e.g. Europe/Paris (default: this "
                   "machine's)")
    p.add_argument("--week-day", action="append", help="Week: Monday ... Sunday (repeatable)")
    p.add_argument("--month-day", action="append", type=int,
                   help="Month: 1-31, or -1 for the last day (repeatable)")
    p.add_argument("--occurrence", action="append", metavar="'Second Tuesday'",
                   help="Month: First|Second|Third|Fourth|Last and a week day (repeatable)")
    p.add_argument("--cron", help="Cron: 'minute hour day-of-month month day-of-week'")
    p.add_argument("--missed", choices=("run_once", "skip"),
                   help="after beat was down: run once for the window (default), or skip")
    p.add_argument("--description")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--disable", action="store_true", help="fire nothing until enabled")
    group.add_argument("--enable", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    sch = sub.add_parser("schedule", help="schedules (Get-SmaSchedule, Set-SmaSchedule)")
    ssub = sch.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(ssub, "list", "list schedules with their next run", lambda a, o: o.table(
        client(a).schedules(),
        [("NAME", "name"), ("FREQUENCY", "frequency"), ("INTERVAL", "interval"),
         ("TIME ZONE", "time_zone"), ("ENABLED", "enabled"), ("NEXT RUN", _next_run)],
        empty="No schedules."))
    command(ssub, "show", "a schedule and its linked runbooks", schedule_show, "name")
    p = command(ssub, "create", "create a schedule (Set-SmaSchedule)", schedule_create,
                "name")
    _schedule_options(p, creating=True)
    p = command(ssub, "update", "change a schedule (counts at beat's next check)",
                schedule_update, "name")
    _schedule_options(p, creating=False)
    command(ssub, "delete", "delete a schedule and its links",
            act(lambda sma, a: sma.delete_schedule(a.name), "Deleted schedule {name!r}."),
            "name")
    p = command(ssub, "link", "run a published runbook on this schedule; its jobs' "
                              "positional arguments after --", schedule_link,
                "name", "runbook", usage="%(prog)s NAME RUNBOOK [options] [-- ARGUMENT ...]")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE")
    p.add_argument("--group", help="worker group (default: the runbook's)")
    command(ssub, "unlink", "stop running a runbook on this schedule",
            act(lambda sma, a: sma.unlink_schedule(a.name, a.runbook),
                "Unlinked {runbook!r} from {name!r}."), "name", "runbook")

    hook = sub.add_parser("webhook", help="webhooks")
    wsub = hook.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(wsub, "list", "list webhooks", lambda a, o: o.table(
        client(a).webhooks(),
        [("NAME", "name"), ("RUNBOOK", "runbook"), ("ENABLED", "enabled"),
         ("EXPIRES", "expiry_time"), ("LAST CALLED", "last_invoked_at")],
        empty="No webhooks."))
    command(wsub, "show", "a webhook (its URL is shown only at creation)",
            lambda a, o: o.item(client(a).get_webhook(a.name)), "name")
    p = command(wsub, "create", "create a webhook; prints its URL, once; its jobs' "
                                "positional arguments after --", webhook_create,
                "name", "runbook", usage="%(prog)s NAME RUNBOOK [options] [-- ARGUMENT ...]")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a fixed parameter of every job it starts (repeatable)")
    p.add_argument("--group", help="worker group")
    p.add_argument("--expiry", help="ISO 8601 with offset (default: a year from now)")
    p.add_argument("--disable", action="store_true", help="create it disabled")
    p = command(wsub, "update", "enable, disable or extend a webhook; -- ARGUMENT ... "
                                "replaces its positional arguments (-- alone: none)",
                webhook_update, "name", usage="%(prog)s NAME [options] [-- ARGUMENT ...]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--enable", action="store_true")
    group.add_argument("--disable", action="store_true")
    p.add_argument("--expiry", help="ISO 8601 with offset")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="replace the fixed parameters")
    command(wsub, "delete", "delete a webhook: its URL stops working",
            act(lambda sma, a: sma.delete_webhook(a.name), "Deleted webhook {name!r}."),
            "name")
    add_common_to(ssub, wsub)


def _fields(args) -> dict:
    fields = {}
    for option, key in (("frequency", "frequency"), ("interval", "interval"),
                        ("start", "start_time"), ("expiry", "expiry_time"),
                        ("time_zone", "time_zone"), ("week_day", "week_days"),
                        ("month_day", "month_days"), ("cron", "cron"), ("missed", "missed"),
                        ("description", "description")):
        value = getattr(args, option, None)
        if value is not None:
            fields[key] = value
    if args.occurrence:
        occurrences = []
        for text in args.occurrence:
            parts = text.split()
            if len(parts) != 2 or parts[0].capitalize() not in OCCURRENCES:
                raise UsageError(f"--occurrence takes e.g. 'Second Tuesday', not {text!r}")
            occurrences.append({"occurrence": parts[0].capitalize(),
                                "day": parts[1].capitalize()})
        fields["monthly_occurrences"] = occurrences
    if args.disable:
        fields["enabled"] = False
    elif args.enable:
        fields["enabled"] = True
    return fields


def schedule_show(args, out: Output):
    sma = client(args)
    schedule = sma.get_schedule(args.name)
    links = sma.schedule_links(args.name)
    if out.json:
        out.data({**schedule.raw, "runbooks": [link.raw for link in links]})
        return
    out.item({**schedule.raw, "next_run": _next_run(schedule)})
    out.console.print()
    out.table(links, [("RUNBOOK", "runbook"), ("PARAMETERS", "parameters"),
                      ("ARGUMENTS", "arguments"), ("GROUP", "worker_group")],
              empty="No runbooks linked.")


def _next_run(schedule) -> str | None:
    return in_zone(schedule.get("next_run"), schedule.get("time_zone"))


def schedule_create(args, out: Output):
    fields = _fields(args)
    if "time_zone" not in fields:
        zone = zone_for(fields.get("start_time"))
        if zone:
            fields["time_zone"] = zone
    schedule = client(args).create_schedule(args.name, fields.pop("frequency"), **fields)
    out.result(schedule, f"Created schedule {args.name!r} in time zone "
                         f"{schedule.get('time_zone')}; next run "
                         f"{_next_run(schedule) or 'none'}.")


def schedule_update(args, out: Output):
    fields = _fields(args)
    if not fields:
        raise UsageError("nothing to change: give at least one option (see --help)")
    schedule = client(args).update_schedule(args.name, **fields)
    out.result(schedule, f"Changed schedule {args.name!r}; next run "
                         f"{_next_run(schedule) or 'none'}.")


def schedule_link(args, out: Output):
    api = client(args)
    link = api.link_schedule(args.name, args.runbook, parse_pairs(args.param),
                             args.group, arguments=getattr(args, "arguments", None))
    zone = api.get_schedule(args.name).get("time_zone") if link.next_run else None
    out.result(link, f"Linked {args.runbook!r} to schedule {args.name!r}; next run "
                     f"{in_zone(link.next_run, zone) or 'none'}.")


def webhook_create(args, out: Output):
    fields = {"enabled": not args.disable}
    if args.group:
        fields["worker_group"] = args.group
    if args.expiry:
        fields["expiry_time"] = args.expiry
    if getattr(args, "arguments", None) is not None:
        fields["arguments"] = args.arguments
    hook = client(args).create_webhook(args.name, args.runbook, parse_pairs(args.param),
                                       **fields)
    if out.json:
        out.data(hook)
        return
    out.console.print(hook.uri)
    out.done("Keep this URL now: it holds the webhook's secret and is not shown again.")


def webhook_update(args, out: Output):
    changes = {}
    if args.enable or args.disable:
        changes["enabled"] = bool(args.enable)
    if args.expiry:
        changes["expiry_time"] = args.expiry
    if args.param is not None:
        changes["parameters"] = parse_pairs(args.param)
    if getattr(args, "arguments", None) is not None:
        changes["arguments"] = args.arguments
    if not changes:
        raise UsageError("nothing to change: --enable, --disable, --expiry, --param or "
                         "-- ARGUMENT ...")
    hook = client(args).update_webhook(args.name, **changes)
    out.result(hook, f"Changed webhook {args.name!r}.")
