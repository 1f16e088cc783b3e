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

FREQUENCIES = ("OneTime", "Minute", "Hour", "Day", "Week", "Month", "Cron")
OCCURRENCES = ("First", "Second", "Third", "Fourth", "Last")


def _schedule_options(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--frequency", choices=FREQUENCIES, required=creating)
    p.add_argument("--interval", type=int, help="every N minutes, hours, days, weeks, months")
    p.add_argument("--start", help="first fire time, ISO 8601 with offset (default: now)")
    p.add_argument("--expiry", help="no fire after this time (ISO 8601 with offset)")
    p.add_argument("--time-zone", help="IANA time zone, e.g. Europe/Paris (default UTC)")
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
    p = ssub.add_parser("list", help="list schedules with their next run")
    p.set_defaults(func=lambda a, o: o.table(
        client(a).schedules(),
        [("NAME", "name"), ("FREQUENCY", "frequency"), ("INTERVAL", "interval"),
         ("TIME ZONE", "time_zone"), ("ENABLED", "enabled"), ("NEXT RUN", "next_run")],
        empty="No schedules."))
    command(ssub, "show", "a schedule and its linked runbooks", schedule_show, "name")
    p = ssub.add_parser("create", help="create a schedule (Set-SmaSchedule)")
    p.add_argument("name")
    _schedule_options(p, creating=True)
    p.set_defaults(func=schedule_create)
    p = ssub.add_parser("update", help="change a schedule (counts at beat's next check)")
    p.add_argument("name")
    _schedule_options(p, creating=False)
    p.set_defaults(func=schedule_update)
    command(ssub, "delete", "delete a schedule and its links",
            act(lambda sma, a: sma.delete_schedule(a.name), "Deleted schedule {name!r}."),
            "name")
    p = ssub.add_parser("link", help="run a published runbook on this schedule")
    p.add_argument("name")
    p.add_argument("runbook")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE")
    p.add_argument("--group", help="worker group (default: the runbook's)")
    p.set_defaults(func=schedule_link)
    command(ssub, "unlink", "stop running a runbook on this schedule",
            act(lambda sma, a: sma.unlink_schedule(a.name, a.runbook),
                "Unlinked {runbook!r} from {name!r}."), "name", "runbook")

    hook = sub.add_parser("webhook", help="webhooks")
    wsub = hook.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = wsub.add_parser("list", help="list webhooks")
    p.set_defaults(func=lambda a, o: o.table(
        client(a).webhooks(),
        [("NAME", "name"), ("RUNBOOK", "runbook"), ("ENABLED", "enabled"),
         ("EXPIRES", "expiry_time"), ("LAST CALLED", "last_invoked_at")],
        empty="No webhooks."))
    command(wsub, "show", "a webhook (its URL is shown only at creation)",
            lambda a, o: o.item(client(a).get_webhook(a.name)), "name")
    p = wsub.add_parser("create", help="create a webhook; prints its URL, once")
    p.add_argument("name")
    p.add_argument("runbook")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a fixed parameter of every job it starts (repeatable)")
    p.add_argument("--group", help="worker group")
    p.add_argument("--expiry", help="ISO 8601 with offset (default: a year from now)")
    p.add_argument("--disable", action="store_true", help="create it disabled")
    p.set_defaults(func=webhook_create)
    p = wsub.add_parser("update", help="enable, disable or extend a webhook")
    p.add_argument("name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--enable", action="store_true")
    group.add_argument("--disable", action="store_true")
    p.add_argument("--expiry", help="ISO 8601 with offset")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="replace the fixed parameters")
    p.set_defaults(func=webhook_update)
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
    out.item(schedule)
    out.console.print()
    out.table(links, [("RUNBOOK", "runbook"), ("PARAMETERS", "parameters"),
                      ("GROUP", "worker_group")], empty="No runbooks linked.")


def schedule_create(args, out: Output):
    fields = _fields(args)
    schedule = client(args).create_schedule(args.name, fields.pop("frequency"), **fields)
    out.result(schedule, f"Created schedule {args.name!r}; next run "
                         f"{schedule.next_run or 'none'}.")


def schedule_update(args, out: Output):
    fields = _fields(args)
    if not fields:
        raise UsageError("nothing to change: give at least one option (see --help)")
    schedule = client(args).update_schedule(args.name, **fields)
    out.result(schedule, f"Changed schedule {args.name!r}; next run "
                         f"{schedule.next_run or 'none'}.")


def schedule_link(args, out: Output):
    link = client(args).link_schedule(args.name, args.runbook, parse_pairs(args.param),
                                      args.group)
    out.result(link, f"Linked {args.runbook!r} to schedule {args.name!r}; next run "
                     f"{link.next_run or 'none'}.")


def webhook_create(args, out: Output):
    fields = {"enabled": not args.disable}
    if args.group:
        fields["worker_group"] = args.group
    if args.expiry:
        fields["expiry_time"] = args.expiry
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
    if not changes:
        raise UsageError("nothing to change: --enable, --disable, --expiry or --param")
    hook = client(args).update_webhook(args.name, **changes)
    out.result(hook, f"Changed webhook {args.name!r}.")
