"""``rlds-hub serve`` (index the roots, then serve the API and the viewer) and ``rlds-hub
index`` (index the roots and exit). Imports FastAPI only when a command runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_HEADER_TIMEOUT = 15.0
DEFAULT_MAX_CONNECTIONS = 1000
KEEP_ALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this long
# The start-up scan's summary for worker processes (their /readyz shows it).
STARTUP_SCAN_VARIABLE = "RLDS_HUB_STARTUP_SCAN"


def add_commands(commands: Any) -> None:
    from rlds_hub.command_line import subparser

    serve = subparser(
        commands,
        "serve",
        help="serve datasets over HTTP: REST API and web viewer",
        description="Index every RLDS dataset under the roots (unchanged ones are skipped), "
        "then serve the REST API (/api/v1, documented at /docs) and the web viewer (/) "
        "until Ctrl-C. Settings not given here come from RLDS_HUB_SERVER_* variables "
        "(see docs/server.md).",
    )
    _index_arguments(serve)
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (0.0.0.0: every interface)"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (more than 1 wants a PostgreSQL index)",
    )
    serve.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help="file holding the bearer token that allows writes (or set "
        "RLDS_HUB_SERVER_TOKEN; default: none, writes are disabled)"
        "%(default).0s",
    )
    serve.add_argument(
        "--scan-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="re-scan the roots every SECONDS (default: never)%(default).0s",
    )
    serve.add_argument(
        "--no-scan", action="store_true", help="serve the index as it is, without scanning first"
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request headers are not complete this "
        "long after it opened or after its previous response (default: "
        "%(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="open connections per server process; more are closed at once (default: %(default)s)",
    )
    serve.set_defaults(run=_serve)

    index = subparser(
        commands,
        "index",
        help="index the datasets under the roots and exit",
        description="Scan the roots into the index database (the one `rlds-hub serve` "
        "uses) and print what was indexed; unchanged datasets are skipped.",
    )
    _index_arguments(index)
    index.set_defaults(run=_index)


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        action="append",
        default=None,
        metavar="DIR",
        help="directory holding datasets (repeatable; default: RLDS_HUB_SERVER_ROOTS)%(default).0s",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of the index, e.g. postgresql+psycopg://host/db "
        "(default: an SQLite file in the first root)%(default).0s",
    )
    parser.add_argument(
        "--no-statistics",
        action="store_true",
        help="do not compute statistics missing from statistics.json",
    )
    parser.add_argument(
        "--no-checksums",
        action="store_true",
        help="do not compute checksums when checksums.json is absent",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from pydantic import ValidationError

    from rlds_hub.server.core.config import Settings

    overrides: dict[str, Any] = dict(extra)
    if args.root:
        overrides["roots"] = args.root
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.no_statistics:
        overrides["compute_statistics"] = False
    if args.no_checksums:
        overrides["compute_checksums"] = False
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise ValueError(problems) from None
    if not settings.roots:
        raise ValueError(
            "name the dataset directories with --root DIR (or set RLDS_HUB_SERVER_ROOTS)"
        )
    return settings


def _progress(quiet: bool) -> Any:
    from tqdm import tqdm

    def factory(description: str, total: int, unit: str) -> Any:
        return tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            disable=quiet or total < 1,
            leave=False,
            file=sys.stderr,
        )

    return factory


class _ReportedHere(logging.Filter):
    """Drops the indexer's per-dataset warnings: the command prints each outcome itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("cannot index")


def _scan(settings: Any, quiet: bool) -> tuple[Any, dict[str, Any]]:
    """Scans the roots into the index: (the report, its summary for /readyz)."""
    from rlds_hub.server.index import database
    from rlds_hub.server.service import Service

    service = Service(settings, progress=_progress(quiet))
    logger = logging.getLogger("rlds_hub.server")
    reported_here = _ReportedHere()
    logger.addFilter(reported_here)
    try:
        database.migrate(service.engine)
        report = service.scan()
    finally:
        logger.removeFilter(reported_here)
        service.engine.dispose()
    if report is None:
        raise ValueError(f"indexing failed: {service.scan_error}")
    for outcome in report.outcomes:
        if outcome.action == "failed":
            print(f"cannot index {outcome.path}: {outcome.error}", file=sys.stderr)
        elif outcome.action != "unchanged" and not quiet:
            print(
                f"{outcome.action} {outcome.name} ({outcome.episodes:,} episodes, "
                f"{outcome.seconds:.1f} s)",
                file=sys.stderr,
            )
    return report, service.last_scan or {}


def _migrate(settings: Any) -> None:
    """Opens and migrates the index (``IndexBroken``, a ValueError, says what is wrong)."""
    from rlds_hub.server.index import database

    engine = database.make_engine(settings.resolved_database_url())
    try:
        database.migrate(engine)
    finally:
        engine.dispose()


def _summary(report: Any) -> str:
    return (
        f"{report.count('indexed')} indexed, {report.count('unchanged')} unchanged, "
        f"{report.count('failed')} failed, {report.count('removed')} removed in "
        f"{report.seconds:.1f} s"
    )


def _index(args: argparse.Namespace) -> int:
    settings = _settings(args)
    report, _ = _scan(settings, args.quiet)
    print(f"index {settings.resolved_database_url()}: {_summary(report)}")
    return 1 if report.count("failed") else 0


def _serve(args: argparse.Namespace) -> int:
    from rlds_hub.server import serving

    extra: dict[str, Any] = {"scan_on_start": False}
    if args.token_file:
        try:
            with open(args.token_file) as f:
                extra["token"] = f.read().strip()
        except OSError as e:
            raise ValueError(f"--token-file {args.token_file}: {e.strerror}") from e
        if not extra["token"]:
            raise ValueError(f"--token-file {args.token_file} is empty")
    if args.scan_interval is not None:
        extra["scan_interval"] = args.scan_interval
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if not args.header_timeout > 0:
        raise ValueError(f"--header-timeout must be positive, got {args.header_timeout}")
    if args.max_connections < 1:
        raise ValueError(f"--max-connections must be at least 1, got {args.max_connections}")
    settings = _settings(args, **extra)
    _raise_file_limit(args.max_connections)
    sock = serving.bind(args.host, args.port)  # before anything says where it serves
    try:
        summary = None
        if not args.no_scan:
            report, summary = _scan(settings, args.quiet)
            print(f"indexed the roots: {_summary(report)}", file=sys.stderr)
        else:  # a damaged index is a message here, not a traceback from the app's start
            _migrate(settings)
        host = f"[{args.host}]" if ":" in args.host else args.host
        writes = "writes need the bearer token" if settings.token else "read-only: no token"
        from rlds_hub.storage.remote import redact  # a root URL's user info is never shown

        print(
            f"serving {', '.join(redact(str(r)) for r in settings.roots)} at "
            f"http://{host}:{args.port}/ "
            f"({writes}; Ctrl-C stops)",
            flush=True,
        )
    except BaseException:
        sock.close()
        raise
    options = {
        "access_log": args.access_log,
        "log_level": "info",
        "timeout_graceful_shutdown": 5,
        "workers": args.workers,
        "header_timeout": args.header_timeout,
        "max_connections": args.max_connections,
        "keep_alive": KEEP_ALIVE_SECONDS,
    }
    if args.workers == 1:
        from rlds_hub.server.app import create_app

        app = create_app(settings)
        if summary is not None:
            app.state.service.record_scan(summary)
        serving.run(app, sock, **options)
    else:
        os.environ.update(settings.environment())
        if summary is not None:
            os.environ[STARTUP_SCAN_VARIABLE] = json.dumps(summary)
        serving.run("rlds_hub.server.app:app_from_environment", sock, factory=True, **options)
    return 0


def _raise_file_limit(connections: int) -> None:
    """Lets the process hold ``connections`` sockets besides its files (soft limit up to the
    hard one); warns when even that is too low."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        print(
            f"warning: the process may open {soft} files, fewer than --max-connections "
            f"{connections} needs ({wanted}): lower --max-connections or raise `ulimit -n`",
            file=sys.stderr,
        )
