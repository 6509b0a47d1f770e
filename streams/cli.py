"""The `driftrec` command: produce, tail, worker, demo, replay, dead-letters, topics, broker, config."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from streams.settings import Settings, settings_env, settings_reference


class CommandError(Exception):
    """What stops a command, in one line for the user."""


def require_kafka(settings: Settings) -> None:
    """Raises CommandError saying why the configured Kafka cannot be used (unreachable, refused credentials)."""
    from streams.connection_check import KafkaUnavailableError, check_connection

    try:
        check_connection(settings)
    except KafkaUnavailableError as error:
        raise CommandError(str(error)) from None


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_clients import idempotent_producer
    from streams.produce import publish_lines

    topic = args.topic or (settings.items_topic if args.items else settings.behaviour_topics[0])
    items = args.items or topic == settings.items_topic
    with sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb") as source:
        require_kafka(settings)
        producer = idempotent_producer(settings)
        try:
            report = publish_lines(producer, topic, source, items=items, progress=args.file != "-")
        finally:
            producer.close()
    for line in report.lines("items" if items else "events", topic):
        print(line)
    return 0


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tail import follow, format_recommendation

    require_kafka(settings)
    try:
        for rec in follow(settings, user=args.user, from_beginning=args.from_beginning):
            print(format_recommendation(rec, {}, top=args.top), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics_admin import ensure_topics

    require_kafka(settings)
    ensure_topics(settings)
    options = ["--loglevel", args.loglevel, *(["--without-web"] if args.without_web else [])]
    if not args.once:
        from streams.supervisor import supervise

        return supervise([sys.executable, "-m", "streams.cli", "worker", "--once", *options])
    from streams.worker import app

    sys.argv = ["driftrec", "worker", *options]
    app.main()
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    return run_demo(duration_s=args.duration, users=args.users, rate=args.rate)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from replay.command import run

    try:
        if args.config is not None:
            settings = replace(settings, weighting_config=args.config)
        if args.experiment is not None:
            settings = replace(settings, experiment=args.experiment)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run(args, settings)


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dead_letters import ReplayPlan, Selection, listing, parse_all, read_topic, send
    from streams.kafka_clients import idempotent_producer

    require_kafka(settings)
    letters, unreadable = parse_all(record.value for record in read_topic(settings, settings.dead_letter_topic))
    chosen = [letter for letter in letters if Selection(args.reason, args.source_topic).matches(letter)]
    print(f"{len(chosen)} of {len(letters)} dead letters in {settings.dead_letter_topic} selected"
          + (f" ({unreadable} other records skipped)" if unreadable else ""))
    for line in listing(chosen, args.samples):
        print(line)
    if not (args.replay or args.dry_run):
        return 0
    plan, sending = ReplayPlan.of(chosen), args.replay and not args.dry_run
    if sending:
        producer = idempotent_producer(settings)
        try:
            send(producer, plan.records)
        finally:
            producer.close()
    for line in plan.lines(sent=sending):
        print(line)
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics_admin import ensure_topics

    require_kafka(settings)
    created = ensure_topics(settings)
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.local_kafka import main as broker_main

    return broker_main([args.action])


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.reference:
        print(settings_reference(), end="")
        return 0
    for variable, value in settings_env(settings).items():
        print(f"{variable}={'***' if variable.endswith('PASSWORD') and value else value}")
    return 0


DEAD_LETTERS_HELP = """\
Reads the whole dead-letter topic (every partition, up to its end at the start; no consumer group) and prints
the selected dead letters' counts per reason, with a few samples each.

--replay sends the selected ones back, with an idempotent producer, once their cause is fixed:
  * a flushed window's events (an internal error of the encode or weigh stage): each event on its own, keyed by
    its user, to the behaviour topic it was read from;
  * a WeightUpdate (a scoring failure): nothing (its events are applied; the user's next event ranks again);
  * any other record (a rejected event or item, malformed JSON): its original key and value, byte for byte, to
    its source topic.
An event a user state applied before changes nothing: a state skips the ids of the last events it applied
(remembered_event_ids, 512 by default), and the shared signals fold each user's event once. A replayed record
that fails again is dead-lettered again, as a new record.
"""


class OneLineParser(argparse.ArgumentParser):
    """Says what is wrong with the command line in one line (argparse's usage block is what --help is for)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="driftrec", description="A real-time recommender over Apache Kafka.")
    commands = parser.add_subparsers(dest="command", required=True)
    produce = commands.add_parser("produce", help="send JSONL events or items to Kafka")
    produce.add_argument("file", help="a JSONL file, or - for standard input")
    produce.add_argument("--topic", help="the target topic (default: the first behaviour topic)")
    produce.add_argument("--items", action="store_true", help="the lines are catalogue items")
    produce.set_defaults(run=_produce)
    tail = commands.add_parser("tail", help="follow the recommendations topic")
    tail.add_argument("--user")
    tail.add_argument("--top", type=int, default=5)
    tail.add_argument("--from-beginning", action="store_true")
    tail.set_defaults(run=_tail)
    worker = commands.add_parser("worker", help="start a Faust worker (faust -A streams.worker worker)")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--without-web", action="store_true")
    worker.add_argument("--once", action="store_true", help="run the worker in this process, without restarts")
    worker.set_defaults(run=_worker)
    demo = commands.add_parser("demo", help="run the live demo on a local broker")
    demo.add_argument("--duration", type=float, default=60.0)
    demo.add_argument("--users", type=int, default=16)
    demo.add_argument("--rate", type=float, default=30.0, help="events per second")
    demo.set_defaults(run=_demo)
    replay = commands.add_parser("replay", help="replay a log offline and compare against baselines")
    from replay.command import add_arguments

    add_arguments(replay)
    replay.set_defaults(run=_replay)
    dead_letters = commands.add_parser(
        "dead-letters", help="count dead letters by reason, with samples; --replay sends them back",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=DEAD_LETTERS_HELP,
    )
    dead_letters.add_argument("--reason", metavar="TEXT",
                              help="only dead letters whose reason contains TEXT or whose category is TEXT (any case)")
    dead_letters.add_argument("--source-topic", metavar="TOPIC", help="only dead letters read from TOPIC")
    dead_letters.add_argument("--samples", type=int, default=3, help="dead letters shown per reason (default 3)")
    dead_letters.add_argument("--replay", action="store_true", help="send the selected dead letters back")
    dead_letters.add_argument("--dry-run", action="store_true", help="say what --replay would send; send nothing")
    dead_letters.set_defaults(run=_dead_letters)
    topics = commands.add_parser("topics", help="create the configured topics")
    topics.set_defaults(run=_topics)
    broker = commands.add_parser("broker", help="the local development broker")
    broker.add_argument("action", choices=["up", "down", "reset", "status"])
    broker.set_defaults(run=_broker)
    config = commands.add_parser("config", help="print the settings in effect (DRIFTREC_* variables)")
    config.add_argument("--reference", action="store_true", help="every setting with its default and meaning")
    config.set_defaults(run=_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings))
    except OSError as error:  # a file that is missing, unreadable or a directory
        print(f"error: {file_problem(error)}", file=sys.stderr)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
    return 1


def file_problem(error: OSError) -> str:
    """An OSError as one line: the file, then what is wrong with it.

    >>> file_problem(FileNotFoundError(2, "No such file or directory", "events.jsonl"))
    'events.jsonl: No such file or directory'
    """
    return f"{error.filename}: {error.strerror}" if error.filename is not None else str(error)


if __name__ == "__main__":
    raise SystemExit(main())
